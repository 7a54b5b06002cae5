"""`ampd plan` is the contract: its exit code says what it saw (0 in sync, 2 changes
pending, 1 could not tell), and it writes nothing — the state directory is byte-identical
before and after, whatever the scenario. Real subprocesses against the AWS emulator and
the IMDSv2 stand-in."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.imds import ImdsServer

REPO = Path(__file__).resolve().parents[2]


def state(prom_port: int, **workspace: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "stack": "contract",
        "aws": {"region": "eu-west-1"},
        "workspace": {
            "alias": "contract-metrics",
            "tags": {"team": "platform"},
            "rule_groups": [{"name": "node", "file": str(REPO / "config/rules/node.yml")}],
            **workspace,
        },
        "prometheus": {
            "listen": f"127.0.0.1:{prom_port}",
            "instance_labels": ["instance_id"],
        },
        "metrics": {"enabled": False},
        "runtime": "supervisor",
    }


def snapshot(root: Path) -> dict[str, str]:
    """Every file below ``root`` with the sha256 of its bytes (and its mode)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() or p.is_symlink():
            data = p.read_bytes() if p.is_file() else b"->" + str(p.readlink()).encode()
            out[str(p.relative_to(root))] = (
                f"{hashlib.sha256(data).hexdigest()} {p.lstat().st_mode:o}"
            )
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = "dir"
    return out


Setup = Callable[[AmpdProcess, AwsEmulator, ImdsServer], None]


def in_sync(_p: AmpdProcess, _em: AwsEmulator, _imds: ImdsServer) -> None:
    pass


def tag_drift(p: AmpdProcess, em: AwsEmulator, _imds: ImdsServer) -> None:
    amp = em.client("amp")
    [ws] = amp.list_workspaces(alias="contract-metrics")["workspaces"]
    amp.tag_resource(resourceArn=ws["arn"], tags={"team": "someone-else"})


def state_edit(p: AmpdProcess, _em: AwsEmulator, _imds: ImdsServer) -> None:
    text = p.state_file.read_text().replace("team: platform", "team: observability")
    assert "observability" in text
    p.write_state(text)


def new_instance(_p: AmpdProcess, _em: AwsEmulator, imds: ImdsServer) -> None:
    imds.instance_id = "i-0fffffffffffffff1"  # an instance started from a baked image


def unreachable(p: AmpdProcess, _em: AwsEmulator, _imds: ImdsServer) -> None:
    p.extra_env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens


def access_denied(_p: AmpdProcess, em: AwsEmulator, _imds: ImdsServer) -> None:
    em.deny("ListWorkspaces")
    em.deny("DescribeWorkspace")


def throttled(_p: AmpdProcess, em: AwsEmulator, _imds: ImdsServer) -> None:
    em.throttle("ListWorkspaces", times=None)
    em.throttle("DescribeWorkspace", times=None)


def invalid_spec(p: AmpdProcess, _em: AwsEmulator, _imds: ImdsServer) -> None:
    p.write_state(p.state_file.read_text() + "prometheus_typo: {}\n")


SCENARIOS: list[tuple[str, Setup, int]] = [
    ("in-sync", in_sync, 0),
    ("aws-tag-drift", tag_drift, 2),
    ("state-edit", state_edit, 2),
    ("new-imds-instance-id", new_instance, 2),
    ("aws-unreachable", unreachable, 1),
    ("access-denied", access_denied, 1),
    ("throttled", throttled, 1),
    ("invalid-spec", invalid_spec, 1),
]


@pytest.mark.parametrize(("setup", "expected"), [pytest.param(s, e, id=n) for n, s, e in SCENARIOS])
def test_plan_exit_code_and_writes_nothing(
    tmp_path: Path,
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    imds: ImdsServer,
    setup: Setup,
    expected: int,
) -> None:
    aws_emulator.instant()  # the subject is plan's exit code, not AWS's transitions
    p = AmpdProcess(tmp_path)
    p.write_state(state(free_port()))
    applied = p.ampd("apply", "--once")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    # a baked data dir, as a real host would have one, to see that plan never wipes it
    wal = p.state_dir / "data" / "prometheus" / "agent" / "wal"
    wal.mkdir(parents=True, exist_ok=True)
    (wal / "00000001").write_bytes(b"samples not yet sent")
    settled = p.ampd("plan")
    assert settled.returncode == 0, settled.stdout + settled.stderr

    setup(p, aws_emulator, imds)
    aws_emulator.reset_requests()
    before = snapshot(p.tmp)
    res = p.ampd("plan")
    after = snapshot(p.tmp)

    assert res.returncode == expected, (res.returncode, res.stdout, res.stderr)
    assert after == before  # plan wrote nothing: not ampd.json, not generated/, not data/
    assert aws_emulator.writes() == []
    if expected == 1 and setup is not invalid_spec:
        assert "could not read" in res.stderr
    if setup is new_instance:
        assert "file/prometheus.yml" in res.stdout  # the new instance's labels are pending
