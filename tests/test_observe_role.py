"""An observe-mode host checks that its role cannot write the control plane, against the
AWS emulator (AccessDenied injected where a least-privilege role would get it)."""

from __future__ import annotations

import pytest

from ampd.gateways.aws import AwsGateway
from ampd.observe.writecheck import observe_role_check
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv


@pytest.fixture
def gateway(aws_emulator_env: AwsEnv) -> AwsGateway:
    return AwsGateway(aws_emulator_env.region)


@pytest.fixture
def workspace_id(gateway: AwsGateway) -> str:
    return str(gateway.create_workspace("fleet", {}, "tok-1", None)["workspaceId"])


def test_a_role_that_can_write_is_reported(
    gateway: AwsGateway, workspace_id: str, aws_emulator: AwsEmulator
) -> None:
    cond = observe_role_check(gateway, workspace_id)
    assert (cond.type, cond.status, cond.reason) == ("ObserveRoleReadOnly", "False", "RoleCanWrite")
    assert "aps:DeleteRuleGroupsNamespace" in cond.message
    assert "iam:DeleteRolePolicy" in cond.message
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 0  # the probes create nothing


def test_a_read_only_role_passes(
    gateway: AwsGateway, workspace_id: str, aws_emulator: AwsEmulator
) -> None:
    aws_emulator.deny("DeleteRuleGroupsNamespace")
    aws_emulator.deny("DeleteRolePolicy")
    cond = observe_role_check(gateway, workspace_id)
    assert (cond.status, cond.reason) == ("True", "ReadOnly")


def test_only_what_it_can_write_is_named(
    gateway: AwsGateway, workspace_id: str, aws_emulator: AwsEmulator
) -> None:
    aws_emulator.deny("DeleteRuleGroupsNamespace")
    cond = observe_role_check(gateway, workspace_id)
    assert cond.status == "False"
    assert "iam:DeleteRolePolicy" in cond.message
    assert "aps:" not in cond.message


def test_aws_unable_to_answer_is_unknown(gateway: AwsGateway, aws_emulator: AwsEmulator) -> None:
    aws_emulator.deny("DeleteRolePolicy")
    aws_emulator.fail("DeleteRuleGroupsNamespace", times=None)
    cond = observe_role_check(gateway, "ws-00000000-0000-0000-0000-000000000000")
    assert (cond.status, cond.reason) == ("Unknown", "CheckFailed")
