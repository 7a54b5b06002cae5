"""State from SSM Parameter Store and S3, against the AWS emulator (moto server mode):
fetch only on a new version, validate like a file, keep the last good copy, skip a bad
version by hash, run the cached copy when the source is unreachable."""

from __future__ import annotations

import json
import random
import re
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest

from ampd import cli
from ampd.errors import Problem, SpecError
from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import MAX_BYTES, SourceFetcher, SourceRef, parse_ref
from ampd.source import specfile
from ampd.source.local import FileSource
from ampd.source.open import open_source
from ampd.source.specfile import (
    file_problems,
    load_and_check,
)
from ampd.source.state import StateSource
from ampd.spec.load import LoadedSpec
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
NAME = "/fleet/prod/ampd"
GOOD = "version: 1\nstack: fleet\nprometheus:\n  enabled: false\n"
BUCKET = "fleet-config"


@pytest.fixture
def ssm(aws_emulator_env: AwsEnv) -> Any:
    return boto3.client("ssm")


@pytest.fixture
def s3(aws_emulator_env: AwsEnv) -> Any:
    client = boto3.client("s3")
    client.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws_emulator_env.region}
    )
    return client


def put(ssm: Any, value: str, name: str = NAME, kind: str = "String") -> None:
    ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)


class Counting:
    """file_problems, counted: how often a version was really validated."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, loaded: LoadedSpec) -> list[Problem]:
        self.calls += 1
        return file_problems(loaded, run_promtool=True)


def source(
    where: str, cache: Path | None, validate: Counting | None = None, seed: int = 1
) -> StateSource:
    return StateSource(
        where,
        cache,
        SourceFetcher(),
        validate=validate or Counting(),
        rng=random.Random(seed),
        files=FileWriter(),
    )


def ops(em: AwsEmulator, operation: str, expected: int) -> int:
    """The recorded count of ``operation`` once ``expected`` have arrived (the emulator
    records a request after its response is sent) or 5 s have passed."""
    wait_for(lambda: em.calls(operation) >= expected, 5, 0.01, f"{expected} {operation}")
    return em.calls(operation)


# -- locations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("ssm:/fleet/prod/ampd", SourceRef("ssm", "/fleet/prod/ampd")),
        ("ssm:ampd-prod", SourceRef("ssm", "ampd-prod")),
        ("s3://b-1/fleet/state.yml", SourceRef("s3", "fleet/state.yml", "b-1")),
        ("/etc/ampd/state.yml", SourceRef("file", "/etc/ampd/state.yml")),
    ],
)
def test_parse_ref_round_trips(text: str, ref: SourceRef) -> None:
    assert parse_ref(text) == ref
    assert str(ref) == text


@pytest.mark.parametrize("text", ["ssm:", "ssm:/fleet/", "s3://bucket", "s3://bucket/", "s3:///k"])
def test_parse_ref_rejects_incomplete(text: str) -> None:
    with pytest.raises(ValueError, match="needs"):
        parse_ref(text)


@pytest.mark.parametrize(
    ("base", "relative", "expected"),
    [
        ("ssm:/fleet/prod/ampd", "rules/node.yml", "ssm:/fleet/prod/rules/node.yml"),
        ("ssm:/fleet/prod/ampd", "./am.yml", "ssm:/fleet/prod/am.yml"),
        ("ssm:ampd-prod", "ampd-rules", "ssm:ampd-rules"),
        ("s3://b-1/fleet/state.yml", "rules/node.yml", "s3://b-1/fleet/rules/node.yml"),
        ("s3://b-1/state.yml", "am.yml", "s3://b-1/am.yml"),
    ],
)
def test_files_beside_the_state(base: str, relative: str, expected: str) -> None:
    assert str(parse_ref(base).beside(relative)) == expected


@pytest.mark.parametrize(
    ("base", "relative", "why"),
    [
        ("ssm:/fleet/prod/ampd", "../../prod/db/password", "'..' would leave"),
        ("ssm:/fleet/prod/ampd", "rules/../../db", "'..' would leave"),
        ("ssm:/fleet/prod/ampd", "/prod/db/password", "an absolute name"),
        (
            "ssm:/fleet/prod/ampd",
            "ssm:/prod/db/password",
            "not another ssm:, s3:// or appconfig: name",
        ),
        ("ssm:/fleet/prod/ampd", "s3://other/am.yml", "not another ssm:, s3:// or appconfig: name"),
        ("ssm:ampd-prod", "prod/db", "only flat names"),
        ("s3://b-1/fleet/state.yml", "ssm:/x/y", "not another ssm:, s3:// or appconfig: name"),
        ("s3://b-1/fleet/state.yml", "../secret.yml", "'..' would leave"),
        ("s3://b-1/fleet/state.yml", "rules//x.yml", "empty segment"),
    ],
)
def test_files_outside_the_prefix_are_refused(base: str, relative: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_ref(base).beside(relative)


# -- ampd validate -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["String", "SecureString"])
def test_validate_ssm(ssm: Any, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    put(ssm, GOOD, kind=kind)
    assert cli.main(["validate", f"ssm:{NAME}"]) == 0
    assert capsys.readouterr().out.strip() == f"ssm:{NAME}: valid"


def test_validate_ssm_reports_positions_in_the_source(
    ssm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    put(ssm, "version: 1\nprometheus:\n  scrape_intervall: 15s\n")
    assert cli.main(["validate", f"ssm:{NAME}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ssm:{NAME}:3:3: prometheus.scrape_intervall: unknown key")
    assert "did you mean 'scrape_interval'" in err


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("missing", "parameter not found"),
        ("denied", "access denied"),
        ("not-yaml", "YAML syntax"),
    ],
)
def test_validate_ssm_bad_input_is_one_line(
    ssm: Any,
    aws_emulator: AwsEmulator,
    setup: str,
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if setup == "denied":
        put(ssm, GOOD)
        aws_emulator.deny("GetParameters")
    elif setup == "not-yaml":
        put(ssm, "version: [1\n")
    assert cli.main(["validate", f"ssm:{NAME}"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ssm:{NAME}:")
    assert reason in err


def test_validate_s3_too_large_and_not_text(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    s3.put_object(Bucket=BUCKET, Key="big.yml", Body=b"#" * (MAX_BYTES + 1))
    s3.put_object(Bucket=BUCKET, Key="bin.yml", Body=b"version: 1\n\xff\xfe")
    assert cli.main(["validate", f"s3://{BUCKET}/big.yml"]) == 1
    # (the in-process emulator may log the connection ampd closed without reading the body)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err == f"s3://{BUCKET}/big.yml:1:1: too large: {MAX_BYTES + 1} bytes (at most {MAX_BYTES})"
    )
    assert cli.main(["validate", f"s3://{BUCKET}/bin.yml"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"s3://{BUCKET}/bin.yml:1:1: not UTF-8 text")
    assert cli.main(["validate", f"s3://{BUCKET}/none.yml"]) == 1
    assert capsys.readouterr().err.strip() == f"s3://{BUCKET}/none.yml:1:1: does not exist"


# -- polling ---------------------------------------------------------------------------------


def test_ssm_fetched_once_per_poll_and_applied_only_when_the_version_changes(
    ssm: Any, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    put(ssm, GOOD)
    counting = Counting()
    src = source(f"ssm:{NAME}", tmp_path / "source", counting)
    assert src.current().spec.stack == "fleet"
    aws_emulator.reset_requests()
    assert src.poll() is False
    assert src.poll() is False
    assert ops(aws_emulator, "GetParameters", 2) == 2  # one call per poll, nothing more
    assert counting.calls == 1  # an unchanged version is not validated again
    put(ssm, GOOD.replace("fleet", "fleet-b"))
    assert src.poll() is True
    assert src.current().spec.stack == "fleet-b"
    assert counting.calls == 2
    cached = tmp_path / "source" / "state.yml"
    assert cached.read_text() == GOOD.replace("fleet", "fleet-b")
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600


def test_s3_uses_if_none_match(s3: Any, aws_emulator: AwsEmulator, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="fleet/state.yml", Body=GOOD.encode())
    src = source(f"s3://{BUCKET}/fleet/state.yml", tmp_path / "source")
    assert src.current().spec.stack == "fleet"
    aws_emulator.reset_requests()
    assert src.poll() is False
    assert ops(aws_emulator, "GetObject", 1) == 1
    gets = [r for r in aws_emulator.requests if r.operation == "GetObject"]
    assert [r.status for r in gets] == [304]


def test_a_bad_version_is_reported_skipped_by_hash_and_the_good_one_runs(
    ssm: Any, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    put(ssm, GOOD)
    counting = Counting()
    src = source(f"ssm:{NAME}", tmp_path / "source", counting)
    src.current()
    put(ssm, GOOD + "prometheus_typo: 1\n")
    assert src.poll() is False
    assert src.current().spec.stack == "fleet"  # the last good version keeps running
    valid = {c.type: c for c in src.conditions()}["StateSourceValid"]
    assert valid.status == "False"
    assert valid.message.startswith(f"ssm:{NAME}:5:1: prometheus_typo: unknown key")
    assert "running the last good version (1)" in valid.message
    calls = counting.calls
    assert src.poll() is False  # same bad version: not validated again
    assert counting.calls == calls
    # the same bad content under a new version: skipped by hash, still not validated
    put(ssm, GOOD + "prometheus_typo: 1\n")
    assert src.poll() is False
    assert counting.calls == calls
    put(ssm, GOOD.replace("fleet", "fleet-c"))
    assert src.poll() is True
    assert {c.type: c.status for c in src.conditions()}["StateSourceValid"] == "True"


def test_unreachable_at_boot_runs_the_cached_copy(
    ssm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(ssm, GOOD)
    source(f"ssm:{NAME}", tmp_path / "source").current()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens
    booted = source(f"ssm:{NAME}", tmp_path / "source")
    assert booted.current().spec.stack == "fleet"
    reach = {c.type: c for c in booted.conditions()}["StateSourceReachable"]
    assert reach.status == "False"
    assert reach.reason == "Unreachable"
    assert reach.message.startswith(f"ssm:{NAME}: unreachable")


def test_unreachable_without_a_cache_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_emulator_env: AwsEnv
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(SpecError) as exc:
        source(f"ssm:{NAME}", tmp_path / "source").current()
    assert len(str(exc.value).splitlines()) == 1
    assert str(exc.value).startswith(f"ssm:{NAME}:1:1: unreachable")


def test_referenced_files_beside_the_parameter_are_fetched(
    ssm: Any, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    state = GOOD + (
        "workspace:\n  alias: fleet\n  rule_groups:\n    - name: node\n"
        "      file: rules/node.yml\n  alertmanager:\n    file: alertmanager.yml\n"
    )
    rules = (REPO / "config/rules/node.yml").read_text()
    put(ssm, state)
    put(ssm, rules, name="/fleet/prod/rules/node.yml")
    put(ssm, (REPO / "config/alertmanager.yml").read_text(), name="/fleet/prod/alertmanager.yml")
    src = source(f"ssm:{NAME}", tmp_path / "source")
    ws = src.current().spec.workspace
    assert ws is not None and ws.alertmanager is not None
    assert Path(ws.rule_groups[0].file).read_text() == rules
    assert Path(ws.rule_groups[0].file).parent == tmp_path / "source" / "files"
    aws_emulator.reset_requests()
    assert src.poll() is False
    assert ops(aws_emulator, "GetParameters", 1) == 1  # state and both files in one call
    put(ssm, rules.replace("node", "host"), name="/fleet/prod/rules/node.yml")
    assert src.poll() is True
    assert "host" in Path(src.current().spec.workspace.rule_groups[0].file).read_text()  # type: ignore[union-attr]


def test_a_missing_referenced_file_names_the_field(ssm: Any, tmp_path: Path) -> None:
    put(ssm, GOOD + "workspace:\n  alias: w\n  alertmanager:\n    file: am.yml\n")
    with pytest.raises(SpecError) as exc:
        source(f"ssm:{NAME}", tmp_path / "source").current()
    assert str(exc.value) == (
        f"ssm:{NAME}:8:11: workspace.alertmanager.file: ssm:/fleet/prod/am.yml: parameter not found"
    )


def test_poll_interval_is_a_setting_with_jitter(ssm: Any, tmp_path: Path) -> None:
    put(ssm, GOOD + "state_source:\n  poll_interval: 10m\n")
    waits = []
    for seed in range(12):
        src = source(f"ssm:{NAME}", None, seed=seed)
        src.current()
        waits.append(src.next_poll_in())
    assert all(480 <= w <= 720 for w in waits)
    assert max(waits) - min(waits) > 30  # hosts do not poll in step


def test_a_source_is_an_object_handed_in_not_a_name_looked_up(ssm: Any, tmp_path: Path) -> None:
    put(ssm, GOOD)
    src = open_source(f"ssm:{NAME}", tmp_path / "source")
    assert isinstance(src, StateSource) and src.remote and src.name == f"ssm:{NAME}"
    assert load_and_check(src).spec.stack == "fleet"
    local = open_source("/etc/ampd/state.yml")
    assert isinstance(local, FileSource) and not local.remote
    assert not hasattr(specfile, "state_source_for")  # no registry, no pseudo-paths
    assert not hasattr(specfile, "_SOURCES")


def test_cli_apply_caches_the_state_and_plan_writes_nothing(
    ssm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(ssm, GOOD)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))
    monkeypatch.setenv("AMPD_STATE", f"ssm:{NAME}")
    monkeypatch.setenv("AMPD_RUNTIME", "supervisor")
    assert cli.main(["plan"]) == 0
    assert not (tmp_path / "state" / "source").exists()  # plan writes nothing
    assert cli.main(["apply"]) == 0
    cached = tmp_path / "state" / "source" / "state.yml"
    assert cached.read_text() == GOOD
    assert json.loads((tmp_path / "state" / "source" / "source.json").read_text())["version"] == "1"


def test_an_unreadable_source_is_looked_at_again_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_emulator_env: AwsEnv
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    src = source(f"ssm:{NAME}", None)
    waits = []
    for _ in range(4):
        src.poll()
        waits.append(src.next_poll_in())
    assert 2.5 <= waits[0] <= 7.5
    assert 20 <= waits[3] <= 60  # 5 s, 10 s, 20 s, 40 s, +-50 %, never over the interval
