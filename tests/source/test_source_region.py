"""The state source's region (issue 22): ``--region``, ``AWS_REGION``/``AWS_DEFAULT_REGION``
or IMDS asked again with backoff. An IMDS that is slow at the first fetch no longer makes
a client for us-east-1 that is kept for the life of the process (and may read another
fleet's parameter of the same name); without any region the source says so."""

from __future__ import annotations

import random
from pathlib import Path

import boto3
import pytest

from ampd import cli
from ampd.errors import SpecError
from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import NoRegion, SourceFetcher, source_region
from ampd.source.specfile import file_problems
from ampd.source.state import StateSource
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.clock import FakeClock
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.imds import ImdsServer

NAME = "/fleet/prod/ampd"
GOOD = "version: 1\nstack: fleet\nprometheus:\n  enabled: false\n"


@pytest.fixture
def no_region_env(aws_emulator_env: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    """The parameter exists in the emulator's region; the process knows no region."""
    boto3.client("ssm").put_parameter(Name=NAME, Value=GOOD, Type="SecureString")
    # the same name in us-east-1 belongs to another fleet: reading it would be wrong
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name=NAME, Value=GOOD.replace("fleet", "other-fleet"), Type="String"
    )
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    return aws_emulator_env


def source(fetcher: SourceFetcher, cache: Path | None = None) -> StateSource:
    return StateSource(
        f"ssm:{NAME}",
        cache,
        fetcher,
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        rng=random.Random(1),
        files=FileWriter(),
    )


def test_the_order_of_the_region_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-north-1")
    assert source_region("ap-south-1", "us-west-2", imds_region=lambda: None) == "ap-south-1"
    assert source_region(None, "us-west-2", imds_region=lambda: None) == "eu-central-1"
    monkeypatch.delenv("AWS_REGION")
    assert source_region(None, "us-west-2", imds_region=lambda: None) == "eu-north-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert source_region(None, "us-west-2", imds_region=lambda: None) == "us-west-2"
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    clock = FakeClock()
    answers = iter([None, None, "sa-east-1"])
    got = source_region(None, None, imds_region=lambda: next(answers), sleep=clock.sleep)
    assert (got, clock.slept) == ("sa-east-1", [0.5, 1.0])
    clock = FakeClock()
    with pytest.raises(NoRegion, match="pass --region, set AWS_REGION, or run on EC2"):
        source_region(None, None, imds_region=lambda: None, sleep=clock.sleep)
    assert clock.slept == [0.5, 1.0, 2.0]  # bounded: four tries, 3.5 s of waiting
    assert clock.elapsed == 3.5


def test_an_imds_slow_at_the_first_fetch_is_asked_again(
    no_region_env: AwsEnv, imds: ImdsServer
) -> None:
    imds.delay = 1.5  # longer than the 1 s timeout: the first answer never arrives in time
    waits: list[float] = []

    def recovers(seconds: float) -> None:  # IMDS answers again during the backoff
        waits.append(seconds)
        imds.delay = 0.0

    fetcher = SourceFetcher(sleep=recovers)
    spec = source(fetcher).current().spec
    assert spec.stack == "fleet"  # this fleet's parameter, not us-east-1's namesake
    assert fetcher.region == "eu-west-1"
    assert waits == [0.5]


def test_no_region_is_a_condition_and_nothing_is_asked(
    no_region_env: AwsEnv,
    aws_emulator: AwsEmulator,
    imds: ImdsServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    imds.delay = 1.5  # never in time
    waits: list[float] = []
    fetcher = SourceFetcher(sleep=waits.append)
    src = source(fetcher, tmp_path / "source")
    aws_emulator.reset_requests()
    with pytest.raises(SpecError, match="no region for the state source"):
        src.current()
    reach = {c.type: c for c in src.conditions()}["StateSourceReachable"]
    assert (reach.status, reach.reason) == ("False", "NoRegion")
    assert "pass --region, set AWS_REGION, or run on EC2 (IMDS did not answer (4 tries))" in (
        reach.message
    )
    assert waits == [0.5, 1.0, 2.0]
    assert aws_emulator.calls("GetParameters") == 0  # no client for a guessed region
    assert fetcher.region is None
    assert src.next_poll_in() <= 7.5  # looked at again soon, with backoff
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # e.g. /etc/default/ampd fixed
    src.look_now()
    assert src.current().spec.stack == "fleet"
    assert fetcher.region == "eu-west-1"


def test_cli_region_option(
    no_region_env: AwsEnv, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert cli.main(["validate", f"ssm:{NAME}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"ssm:{NAME}:1:1: no region for the state source: pass --region, set AWS_REGION,"
        " or run on EC2 (instance metadata is disabled)"
    )
    assert cli.main(["--region", "eu-west-1", "validate", f"ssm:{NAME}"]) == 0
    assert capsys.readouterr().out.strip() == f"ssm:{NAME}: valid"
