"""A fleet host's boot costs at most two control-plane calls (docs/fleet.md): the state
read and one AMP call. The account comes from the instance identity document, the
workspace from one call, and the observe role check waits until after boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.plan.policy import Arns, PolicyInputs, observe_policy
from ampd.aws.side.side import AwsSide
from ampd.core import ConditionStatus
from ampd.engine.facts import Facts
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.clock import FakeClock
from tests.harness.fixtures_aws import AwsEnv, role_session

ACCOUNT = "123456789012"  # the emulator's account, as the identity document says it


def fleet_spec(mode: str, workspace_id: str | None = None) -> StateSpec:
    ws: dict[str, object] = {"alias": "fleet-metrics", "tags": {"team": "platform"}}
    if workspace_id is not None:
        ws["id"] = workspace_id
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "fleet",
            "aws": {"region": "eu-west-1", "mode": mode},
            "workspace": ws,
        }
    )


def host_facts(instance_id: str = "i-0aaaaaaaaaaaaaaa1") -> Facts:
    return Facts(
        instance_labels={"instance_id": instance_id, "region": "eu-west-1", "account_id": ACCOUNT}
    )


def made_by_manager(tmp_path: Path) -> str:
    manager = AwsSide(make_gateway, Store(tmp_path / "manager.json"))
    result = aws_pass(manager, fleet_spec("manage"), apply=True)
    assert result.workspace is not None and all(o.ok for o in result.outcomes)
    return result.workspace.id


def operations(em: AwsEmulator) -> list[str]:
    return [f"{r.service}:{r.operation}" for r in em.requests]


def test_an_observe_host_finds_the_workspace_by_alias_with_one_call(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    ws_id = made_by_manager(tmp_path)
    aws_emulator.reset_requests()
    host = AwsSide(make_gateway, Store(tmp_path / "host.json"), role_check_delay=3600)
    result = aws_pass(host, fleet_spec("observe"), facts=host_facts(), apply=True)
    assert result.workspace is not None and result.workspace.id == ws_id
    assert all(o.ok for o in result.outcomes)
    assert operations(aws_emulator) == ["aps:ListWorkspaces"]  # no STS, no Describe
    role = result.condition("ObserveRoleReadOnly")
    assert role is not None and (role.status, role.reason) == (
        ConditionStatus.UNKNOWN,
        "NotCheckedYet",
    )


def test_a_pinned_or_remembered_workspace_is_one_describe(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    ws_id = made_by_manager(tmp_path)
    aws_emulator.reset_requests()
    pinned = AwsSide(make_gateway, Store(tmp_path / "pinned.json"), role_check_delay=3600)
    result = aws_pass(pinned, fleet_spec("observe", ws_id), facts=host_facts(), apply=True)
    assert result.workspace is not None and result.workspace.id == ws_id
    assert operations(aws_emulator) == ["aps:DescribeWorkspace"]
    # a host booted from an image that kept ampd.json's workspace record (ampd bake)
    aws_emulator.reset_requests()
    baked = AwsSide(make_gateway, Store(tmp_path / "pinned.json"), role_check_delay=3600)
    result = aws_pass(
        baked, fleet_spec("observe"), facts=host_facts("i-0bbbbbbbbbbbbbbb2"), apply=True
    )
    assert result.workspace is not None and result.workspace.id == ws_id
    assert operations(aws_emulator) == ["aps:DescribeWorkspace"]


def test_without_instance_metadata_or_as_a_manager_the_account_comes_from_sts(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    made_by_manager(tmp_path)
    aws_emulator.reset_requests()
    off_ec2 = AwsSide(make_gateway, Store(tmp_path / "off.json"), role_check_delay=3600)
    aws_pass(off_ec2, fleet_spec("observe"), facts=Facts(), apply=True)
    assert operations(aws_emulator).count("sts:GetCallerIdentity") == 1
    aws_emulator.reset_requests()
    manager = AwsSide(make_gateway, Store(tmp_path / "manager.json"))
    aws_pass(manager, fleet_spec("manage"), facts=host_facts(), apply=True, force_read=True)
    assert operations(aws_emulator).count("sts:GetCallerIdentity") == 1


def test_the_role_check_runs_once_after_the_delay(
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws_id = made_by_manager(tmp_path)
    # the host runs as its instance role, with what `ampd policy observe` + `host` grant
    spec = fleet_spec("observe")
    inputs = PolicyInputs(spec, Arns.of("eu-west-1", ACCOUNT), ws_id, own_role="fleet-host")
    policies = {"observe": observe_policy(inputs)}
    creds = role_session(aws_emulator, "fleet-host", policies).get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds.token)
    clock = FakeClock()
    host = AwsSide(make_gateway, Store(tmp_path / "host.json"), clock=clock, role_check_delay=120)
    aws_emulator.reset_requests()
    first = aws_pass(host, spec, facts=host_facts(), apply=True)
    assert first.condition("ObserveRoleReadOnly").reason == "NotCheckedYet"  # type: ignore[union-attr]
    assert checks(aws_emulator) == []
    clock.advance(121)
    later = aws_pass(host, spec, facts=host_facts(), apply=True)
    role = later.condition("ObserveRoleReadOnly")
    assert role is not None and (role.status, role.reason) == ("True", "ReadOnly")
    # who am I (needs no permission), then one simulation for AMP and one for IAM
    assert checks(aws_emulator) == [
        "sts:GetCallerIdentity",
        "iam:SimulatePrincipalPolicy",
        "iam:SimulatePrincipalPolicy",
    ]
    clock.advance(379)  # at 500 s
    aws_pass(host, spec, facts=host_facts(), apply=True)
    assert len(checks(aws_emulator)) == 3  # once only
    # the check writes nothing and is never denied: no AccessDenied event on any host
    assert aws_emulator.writes() == []
    assert [r.operation for r in aws_emulator.requests if r.status == 403] == []
    # a plan never checks
    planner = AwsSide(make_gateway, Store(tmp_path / "host.json"), role_check_delay=0)
    aws_emulator.reset_requests()
    aws_pass(planner, spec, facts=host_facts(), apply=False)
    assert checks(aws_emulator) == []


def checks(em: AwsEmulator) -> list[str]:
    return [op for op in operations(em) if op.startswith(("iam:Simulate", "sts:"))]
