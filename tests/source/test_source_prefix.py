"""A remote state reads only files inside its own prefix (issue 22): ``..``, absolute
names and explicit other ``ssm:``/``s3://`` names are refused with the position of the
field, and the AWS emulator's request log shows that nothing outside the prefix (and no
other parameter WithDecryption) was ever asked for."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import boto3
import pytest

from ampd import cli
from ampd.errors import SpecError
from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import SourceFetcher
from ampd.source.specfile import file_problems
from ampd.source.state import StateSource
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
NAME = "/fleet/prod/ampd"
SECRET = "/prod/db/password"
BUCKET = "fleet-config"

HOSTILE = (
    "version: 1\n"
    "stack: fleet\n"
    "prometheus:\n"
    "  enabled: false\n"
    "workspace:\n"
    "  alias: fleet\n"
    "  rule_groups:\n"
    "    - name: a\n"
    "      file: ../../prod/db/password\n"
    "    - name: b\n"
    "      file: /prod/db/password\n"
    "    - name: c\n"
    "      file: rules/node.yml\n"
    "  alertmanager:\n"
    "    file: ssm:/prod/db/password\n"
)


class NamesAsked:
    """Every SSM parameter name and S3 key the fetcher's client sends (botocore's own
    parameter hook, before signing): what the emulator's log cannot show for SSM."""

    def __init__(self) -> None:
        self.ssm: list[tuple[str, bool]] = []
        self.s3: list[str] = []
        self.session = boto3.session.Session()
        self.session.events.register("provide-client-params.ssm.GetParameters", self._ssm)
        self.session.events.register("provide-client-params.s3.GetObject", self._s3)

    def _ssm(self, params: dict[str, Any], **_: Any) -> None:
        self.ssm += [(n, bool(params.get("WithDecryption"))) for n in params["Names"]]

    def _s3(self, params: dict[str, Any], **_: Any) -> None:
        self.s3.append(f"{params['Bucket']}/{params['Key']}")


def settled(em: AwsEmulator, operation: str, at_least: int) -> int:
    wait_for(lambda: em.calls(operation) >= at_least, 5, 0.01, f"{at_least} {operation}")
    return em.calls(operation)


def test_validate_refuses_names_outside_the_prefix_with_positions(
    aws_emulator_env: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=NAME, Value=HOSTILE, Type="SecureString")
    ssm.put_parameter(Name=SECRET, Value="hunter2", Type="SecureString")
    rules = (REPO / "config/rules/node.yml").read_text()
    ssm.put_parameter(Name="/fleet/prod/rules/node.yml", Value=rules, Type="String")
    assert cli.main(["validate", f"ssm:{NAME}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"ssm:{NAME}:9:13: workspace.rule_groups[0].file: ../../prod/db/password:"
        " '..' would leave the state's prefix (ssm:/fleet/prod/)",
        f"ssm:{NAME}:11:13: workspace.rule_groups[1].file: /prod/db/password: an absolute"
        " name is not allowed in a remote state; name the file relative to it"
        " (read from ssm:/fleet/prod/)",
        f"ssm:{NAME}:15:11: workspace.alertmanager.file: ssm:/prod/db/password: a remote"
        " state may only name files beside it (under ssm:/fleet/prod/), not another"
        " ssm:, s3:// or appconfig: name",
    ]
    assert not any("hunter2" in line for line in err)


def test_nothing_outside_the_prefix_is_ever_asked_for(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=NAME, Value=HOSTILE, Type="SecureString")
    ssm.put_parameter(Name=SECRET, Value="hunter2", Type="SecureString")
    rules = (REPO / "config/rules/node.yml").read_text()
    ssm.put_parameter(Name="/fleet/prod/rules/node.yml", Value=rules, Type="String")
    aws_emulator.reset_requests()
    asked = NamesAsked()
    src = StateSource(
        f"ssm:{NAME}",
        tmp_path / "source",
        SourceFetcher(session=asked.session),
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        rng=random.Random(1),
        files=FileWriter(),
    )
    with pytest.raises(SpecError):
        src.current()
    src.look_now()
    src.poll()
    # every request the emulator saw is one the hook saw: GetParameters only
    calls = settled(aws_emulator, "GetParameters", 2)
    assert {r.operation for r in aws_emulator.requests} == {"GetParameters"}
    assert calls == 3  # the state, its one file beside it; then one poll for both
    names = {n for n, _ in asked.ssm}
    assert names == {NAME, "/fleet/prod/rules/node.yml"}
    assert all(n.startswith("/fleet/prod/") for n, _ in asked.ssm)
    assert SECRET not in names
    files = tmp_path / "source" / "files"
    assert not files.exists() or not any(
        b"hunter2" in p.read_bytes() for p in files.iterdir() if p.is_file()
    )


def test_s3_reads_only_keys_under_the_state_prefix(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws_emulator_env.region}
    )
    state = HOSTILE.replace("ssm:/prod/db/password", f"s3://{BUCKET}/secrets/am.yml").replace(
        "../../prod/db/password", "../secrets/rules.yml"
    )
    s3.put_object(Bucket=BUCKET, Key="fleet/state.yml", Body=state.encode())
    s3.put_object(Bucket=BUCKET, Key="secrets/rules.yml", Body=b"hunter2")
    rules = (REPO / "config/rules/node.yml").read_bytes()
    s3.put_object(Bucket=BUCKET, Key="fleet/rules/node.yml", Body=rules)
    aws_emulator.reset_requests()
    asked = NamesAsked()
    src = StateSource(
        f"s3://{BUCKET}/fleet/state.yml",
        None,
        SourceFetcher(session=asked.session),
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        files=FileWriter(),
    )
    with pytest.raises(SpecError) as exc:
        src.current()
    assert len(exc.value.problems) == 3
    settled(aws_emulator, "GetObject", 2)
    paths = [r.path for r in aws_emulator.requests]
    assert paths and all("/fleet/" in p for p in paths), paths  # the emulator's own log
    assert sorted(asked.s3) == [f"{BUCKET}/fleet/rules/node.yml", f"{BUCKET}/fleet/state.yml"]


def test_a_cached_copy_naming_a_file_outside_the_prefix_is_not_run(
    aws_emulator_env: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy cached by an older ampd, which read ``../`` names, is not run at boot."""
    cache = tmp_path / "source"
    (cache / "files").mkdir(parents=True)
    rules = cache / "files" / "0123456789abcdef-password"
    rules.write_text((REPO / "config/rules/node.yml").read_text())
    state = (
        "version: 1\nstack: fleet\nprometheus:\n  enabled: false\nworkspace:\n  alias: w\n"
        "  rule_groups:\n    - name: a\n      file: ../../prod/db/password\n"
    )
    (cache / "state.yml").write_text(state)
    meta = {
        "source": f"ssm:{NAME}",
        "version": "3",
        "sha256": "",
        "saved_at": 0,
        "files": {
            "../../prod/db/password": {"ref": f"ssm:{SECRET}", "version": "1", "path": str(rules)}
        },
    }
    (cache / "source.json").write_text(json.dumps(meta))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the source is unreachable
    asked = NamesAsked()
    src = StateSource(
        f"ssm:{NAME}",
        cache,
        SourceFetcher(session=asked.session),
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
        files=FileWriter(),
    )
    with pytest.raises(SpecError, match="unreachable"):
        src.current()
    assert [n for n, _ in asked.ssm] == [NAME]  # the cached names are not polled either
