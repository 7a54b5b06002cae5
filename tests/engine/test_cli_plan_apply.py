"""`ampd plan` / `ampd apply --once` against the AWS emulator, as real subprocesses:
terraform-like output, JSON, and the exit codes of DESIGN §3 (plan 0/2/1, apply 0/2/1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port

REPO = Path(__file__).resolve().parents[2]


def state(prom_port: int) -> dict[str, Any]:
    return {
        "version": 1,
        "stack": "cli",
        "aws": {"region": "eu-west-1"},
        "workspace": {
            "alias": "cli-metrics",
            "tags": {"team": "platform"},
            "retention_days": 90,
            "rule_groups": [{"name": "node", "file": str(REPO / "config/rules/node.yml")}],
        },
        "iam": {"writer": {"role_name": "cli-writer", "instance_profile": "cli-writer"}},
        "prometheus": {"listen": f"127.0.0.1:{prom_port}", "remote_write": None},
        "metrics": {"enabled": False},
        "runtime": "supervisor",
    }


@pytest.fixture
def proc(tmp_path: Path, aws_emulator_env: AwsEnv) -> AmpdProcess:
    p = AmpdProcess(tmp_path)
    p.write_state(state(free_port()))
    return p


def test_plan_apply_plan(proc: AmpdProcess, aws_emulator: AwsEmulator) -> None:
    first = proc.ampd("plan")
    assert first.returncode == 2, first.stdout + first.stderr
    assert "+ aws.workspace/cli (create)" in first.stdout
    assert "+ aws.rule_group/node (create)" in first.stdout
    assert "+ file/prometheus.yml (create)" in first.stdout
    assert first.stdout.rstrip().splitlines()[-1].startswith("Plan: ")
    assert aws_emulator.writes() == []  # plan changes nothing

    as_json = json.loads(proc.ampd("plan", "--json").stdout)
    assert as_json["schema"] == "ampd.plan/v1"
    assert as_json["in_sync"] is False
    assert {"kind": "aws.workspace", "action": "create"}.items() <= as_json["changes"][
        0
    ].items() or any(c["kind"] == "aws.workspace" for c in as_json["changes"])

    # The workspace is CREATING for a while (as from AMP): apply passes again until it is
    # ACTIVE and its rule group is written, and only then claims convergence.
    applied = proc.ampd("apply", "--once")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "=> done" in applied.stdout
    # what it waited for, as terraform says it (a pipe: plain lines)
    assert "aws.workspace/cli: still creating... [0s elapsed]" in applied.stderr
    assert "+ aws.rule_group/node (create)" in applied.stdout
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 1
    assert len(aws_emulator.workspace_ids("eu-west-1")) == 1
    assert (proc.state_dir / "generated" / "prometheus.yml").exists()

    again = proc.ampd("plan")
    assert again.returncode == 0, again.stdout
    assert "No changes" in again.stdout


def test_apply_says_what_aws_has_not_finished(proc: AmpdProcess, aws_emulator: AwsEmulator) -> None:
    """With no time to wait (``--wait=0``), a workspace still CREATING is not claimed
    converged: apply exits 2 and names it, and the rule group it could not write yet."""
    aws_emulator.creation_delay(600)
    res = proc.ampd("apply", "--once", "--wait=0")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "still in progress after 0 s: aws.workspace/cli" in res.stderr
    assert "aws.rule_group/node" in res.stderr
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 0


def test_plan_reports_an_invalid_state_file(proc: AmpdProcess) -> None:
    proc.write_state("version: 1\nworkspace: {alais: x}\n")
    res = proc.ampd("plan")
    assert res.returncode == 1
    assert f"{proc.state_file}:2:" in res.stderr
    assert "did you mean 'alias'" in res.stderr


def test_apply_partly_failing_exits_2(proc: AmpdProcess, aws_emulator: AwsEmulator) -> None:
    aws_emulator.instant()  # the rule group is written in the same pass as the workspace
    aws_emulator.deny("CreateRuleGroupsNamespace", "arn:aws:iam::123456789012:user/ci")
    res = proc.ampd("apply", "--once")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "FAILED" in res.stdout
    assert "CreateRuleGroupsNamespace" in res.stdout
    assert len(aws_emulator.workspace_ids("eu-west-1")) == 1  # the rest converged
