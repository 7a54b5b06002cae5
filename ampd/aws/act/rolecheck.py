"""Can this host's role write the control plane? For ``aws.mode: observe`` fleet hosts.

A fleet host in observe mode should run with a role that can only write samples and read
the workspace. :func:`observe_role_check` asks IAM, and nothing else: one
``sts:GetCallerIdentity`` (it needs no permission) names the role, and
``iam:SimulatePrincipalPolicy`` on that role (what ``ampd policy observe`` grants it, on
itself only) says which control-plane writes its policies allow, on this workspace and on
IAM. Nothing is written and nothing is denied, so no host raises an AccessDenied event:

    every write implicitly or explicitly denied -> ObserveRoleReadOnly=True
    any write allowed                           -> ObserveRoleReadOnly=False, naming them
    the simulation itself refused or failed     -> Unknown (CannotCheck / CheckFailed)

The simulation evaluates the role's identity policies and its permissions boundary, not
resource policies or SCPs: a role it calls read-only is read-only; one it says may write
could still be stopped by an SCP (a false alarm, never a false all-clear). A role with a
path is not found from the session ARN (which has no path): the check is Unknown then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ampd.aws.gateway.client import AccessDenied, Identity
from ampd.aws.plan.policy import Arns, role_arn_of_caller
from ampd.core import Condition, ConditionStatus
from ampd.errors import AmpdError

__all__ = [
    "AMP_WRITES",
    "CONDITION",
    "DEFERRED_BY",
    "IAM_WRITES",
    "PermissionSimulator",
    "RoleCheckSchedule",
    "observe_role_check",
]

CONDITION = "ObserveRoleReadOnly"
# the writes ampd's manager makes, which an observe host must not be able to make
AMP_WRITES = (
    "aps:CreateRuleGroupsNamespace",
    "aps:PutRuleGroupsNamespace",
    "aps:DeleteRuleGroupsNamespace",
    "aps:PutAlertManagerDefinition",
    "aps:UpdateWorkspaceConfiguration",
    "aps:PutResourcePolicy",  # would let other accounts write into the workspace
    "aps:UpdateWorkspaceAlias",
    "aps:TagResource",
    "aps:DeleteWorkspace",
    "aps:CreateWorkspace",
)
IAM_WRITES = (
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreateRole",
    "iam:PassRole",
)


class PermissionSimulator(Protocol):
    """What the check needs of ampd.aws.gateway.client.AwsReader."""

    region: str

    def identity(self) -> Identity: ...

    def simulate_principal_policy(
        self, principal_arn: str, actions: list[str], resources: list[str]
    ) -> dict[str, str]: ...


def observe_role_check(
    gateway: PermissionSimulator, workspace_id: str | None, caller: str | None = None
) -> Condition:
    """``ObserveRoleReadOnly``: True when the role's policies allow no AMP write (on this
    workspace) nor IAM write (on itself); False names what they allow; Unknown when IAM
    could not say. ``caller`` is the caller's ARN when already known (else STS is asked)."""
    try:
        if not caller:
            caller = gateway.identity().arn
        principal = role_arn_of_caller(caller)
        if principal is None:
            return Condition(
                CONDITION,
                ConditionStatus.UNKNOWN,
                "CannotCheck",
                f"{caller} is not a role or user whose policies can be simulated",
            )
        fields = principal.split(":")
        ws_arn = Arns(fields[1], gateway.region, fields[4]).workspace(workspace_id)
        decisions = gateway.simulate_principal_policy(principal, list(AMP_WRITES), [ws_arn])
        decisions |= gateway.simulate_principal_policy(principal, list(IAM_WRITES), [principal])
    except AccessDenied as e:
        return Condition(
            CONDITION,
            ConditionStatus.UNKNOWN,
            "CannotCheck",
            f"{e}: grant the role iam:SimulatePrincipalPolicy on itself "
            "(`ampd policy observe` includes it)",
        )
    except AmpdError as e:
        return Condition(CONDITION, ConditionStatus.UNKNOWN, "CheckFailed", str(e))
    allowed = [a for a in (*AMP_WRITES, *IAM_WRITES) if decisions.get(a) == "allowed"]
    if allowed:
        return Condition(
            CONDITION,
            ConditionStatus.FALSE,
            "RoleCanWrite",
            f"aws.mode is observe but this host's role may call {', '.join(allowed)}: "
            "give fleet hosts a role that can only write samples and read the workspace "
            "(`ampd policy observe` and `ampd policy host`)",
        )
    return Condition(
        CONDITION,
        ConditionStatus.TRUE,
        "ReadOnly",
        "this host's role cannot write the AMP or IAM control plane",
    )


# Not at boot: a fleet that boots together would add calls per host to the boot's budget
# (docs/fleet.md: at most 2, the state read included). The check runs on the first pass
# this long after the host's first observe pass (the resync timer brings one).
DEFERRED_BY = 120.0


class RoleCheckSchedule:
    """Runs :func:`observe_role_check` once per (identity, workspace), on the first pass
    at least ``delay`` seconds after the first one; until then the condition is Unknown
    with reason ``NotCheckedYet``."""

    def __init__(self, clock: Callable[[], float], delay: float = DEFERRED_BY) -> None:
        self._clock = clock
        self._delay = delay
        self._first: float | None = None
        self._done: dict[tuple[str, str | None], Condition] = {}

    def condition(
        self, gateway: PermissionSimulator, who: str, workspace_id: str | None
    ) -> Condition:
        """``who`` is the caller's ARN when known, else its account."""
        key = (who, workspace_id)
        if key in self._done:
            return self._done[key]
        now = self._clock()
        if self._first is None:
            self._first = now
        if now - self._first < self._delay:
            return Condition(
                CONDITION,
                ConditionStatus.UNKNOWN,
                "NotCheckedYet",
                f"checked on the first pass {self._delay:.0f} s after start "
                "(iam:SimulatePrincipalPolicy, kept out of the fleet's boot)",
            )
        caller = who if who.startswith("arn:") else None
        self._done[key] = observe_role_check(gateway, workspace_id, caller)
        return self._done[key]
