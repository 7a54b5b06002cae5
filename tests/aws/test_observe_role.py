"""An observe-mode host checks that its role cannot write the control plane, against the
AWS emulator: a real role in moto, with real policies, whose credentials the host uses.
The check is a simulation (``iam:SimulatePrincipalPolicy`` on the role itself): it writes
nothing, not even a probe, and no host ever gets an AccessDenied from it."""

from __future__ import annotations

from typing import Any

import pytest

from ampd.aws.act.rolecheck import observe_role_check
from ampd.aws.gateway.client import AwsReader
from ampd.aws.plan.policy import Arns, PolicyInputs, host_policy, observe_policy
from ampd.spec.models import StateSpec
from tests.harness.aws_emulator import ACCOUNT_ID, AwsEmulator
from tests.harness.fixtures_aws import AwsEnv, role_session

ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
IAM_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}],
}
SPEC = StateSpec.model_validate(
    {
        "version": 1,
        "stack": "fleet",
        "aws": {"mode": "observe"},
        "workspace": {"alias": "fleet"},
        "prometheus": {},
    }
)


@pytest.fixture
def workspace_id(aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator) -> str:
    amp = aws_emulator.client("amp")
    return str(amp.create_workspace(alias="fleet")["workspaceId"])


def host(em: AwsEmulator, policies: dict[str, Any], **kw: Any) -> AwsReader:
    session = role_session(em, "fleet-host", policies, **kw)
    em.reset_requests()
    return AwsReader("eu-west-1", session=session)


def shipped(workspace_id: str) -> dict[str, Any]:
    """What `ampd policy observe` and `ampd policy host` print for this host."""
    inputs = PolicyInputs(
        SPEC, Arns.of("eu-west-1", ACCOUNT_ID), workspace_id, own_role="fleet-host"
    )
    return {"observe": observe_policy(inputs), "host": host_policy(inputs)}


def quiet(em: AwsEmulator) -> None:
    """Nothing written, nothing denied: the only calls are who-am-I and the simulation."""
    assert em.writes() == []
    assert [r.operation for r in em.requests if r.status == 403] == []
    assert {f"{r.service}:{r.operation}" for r in em.requests} <= {
        "sts:GetCallerIdentity",
        "iam:SimulatePrincipalPolicy",
    }


def test_a_role_that_can_write_is_reported(aws_emulator: AwsEmulator, workspace_id: str) -> None:
    gateway = host(aws_emulator, {"all": ALL})
    cond = observe_role_check(gateway, workspace_id)
    assert (cond.type, cond.status, cond.reason) == ("ObserveRoleReadOnly", "False", "RoleCanWrite")
    assert "aps:DeleteRuleGroupsNamespace" in cond.message
    assert "iam:DeleteRolePolicy" in cond.message
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 0  # nothing is probed
    quiet(aws_emulator)


def test_a_read_only_role_passes(aws_emulator: AwsEmulator, workspace_id: str) -> None:
    gateway = host(aws_emulator, shipped(workspace_id))
    cond = observe_role_check(gateway, workspace_id)
    assert (cond.status, cond.reason) == ("True", "ReadOnly")
    quiet(aws_emulator)


def test_only_what_it_can_write_is_named(aws_emulator: AwsEmulator, workspace_id: str) -> None:
    gateway = host(aws_emulator, {**shipped(workspace_id), "iam": IAM_ONLY})
    cond = observe_role_check(gateway, workspace_id)
    assert cond.status == "False"
    assert "iam:DeleteRolePolicy" in cond.message
    assert "aps:" not in cond.message
    quiet(aws_emulator)


def test_a_permissions_boundary_counts(aws_emulator: AwsEmulator, workspace_id: str) -> None:
    """A role whose own policy says "*" but whose boundary allows only reads cannot write."""
    boundary = shipped(workspace_id)["observe"]
    gateway = host(aws_emulator, {"all": ALL}, boundary=boundary)
    cond = observe_role_check(gateway, workspace_id)
    assert (cond.status, cond.reason) == ("True", "ReadOnly")


def test_an_explicit_deny_counts(aws_emulator: AwsEmulator, workspace_id: str) -> None:
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": ["aps:*", "iam:*"], "Resource": "*"}],
    }
    gateway = host(aws_emulator, {"all": ALL, "deny": deny})
    assert observe_role_check(gateway, workspace_id).status == "True"


def test_aws_unable_to_answer_is_unknown(aws_emulator: AwsEmulator, workspace_id: str) -> None:
    gateway = host(aws_emulator, shipped(workspace_id))
    aws_emulator.fail("SimulatePrincipalPolicy", times=None)
    cond = observe_role_check(gateway, "ws-00000000-0000-0000-0000-000000000000")
    assert (cond.status, cond.reason) == ("Unknown", "CheckFailed")


def test_a_role_not_allowed_to_simulate_is_told_how(
    aws_emulator: AwsEmulator, workspace_id: str
) -> None:
    gateway = host(aws_emulator, shipped(workspace_id))
    aws_emulator.deny("SimulatePrincipalPolicy")
    cond = observe_role_check(gateway, workspace_id)
    assert (cond.status, cond.reason) == ("Unknown", "CannotCheck")
    assert "iam:SimulatePrincipalPolicy" in cond.message
    assert "ampd policy observe" in cond.message


def test_a_role_that_can_put_the_resource_policy_is_reported(
    aws_emulator: AwsEmulator, workspace_id: str
) -> None:
    """PutResourcePolicy would let a fleet host grant other accounts remote write."""
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "aps:PutResourcePolicy", "Resource": "*"}],
    }
    gateway = host(aws_emulator, {**shipped(workspace_id), "grant": grant})
    cond = observe_role_check(gateway, workspace_id)
    assert (cond.status, cond.reason) == ("False", "RoleCanWrite")
    assert "aps:PutResourcePolicy" in cond.message and "aps:Create" not in cond.message
    quiet(aws_emulator)
