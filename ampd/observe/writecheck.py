"""Can this host's role write the control plane? For ``aws.mode: observe`` fleet hosts.

A fleet host in observe mode should run with a role that can only write samples and read
the workspace. :func:`observe_role_check` asks AWS, without changing anything: it calls a
delete on things that cannot exist (a rule-groups namespace and an inline policy of a
role, both named ``ampd-write-probe-<random>``). AWS authorizes before it looks the
resource up, so

    AccessDenied               -> the role cannot write there (what observe mode wants)
    ResourceNotFound/NoSuchEntity -> the role may write there: ObserveRoleReadOnly=False

(``iam:SimulatePrincipalPolicy`` would answer without a call on the service, but it needs
its own permission on every fleet role and the role's ARN with its path; the probes need
neither, and the AWS emulator can check them.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol

from ampd.core import Condition, ConditionStatus
from ampd.errors import AmpdError, PermanentError, TemporaryError
from ampd.gateways.aws import AccessDenied

CONDITION = "ObserveRoleReadOnly"
_NOT_FOUND = frozenset({"ResourceNotFoundException", "NoSuchEntity", "NotFoundException"})


class WriteProbes(Protocol):
    """What the check needs of ampd.gateways.aws.AwsGateway."""

    def delete_rule_group(self, workspace_id: str, name: str) -> None: ...

    def delete_inline_policy(self, role: str, policy: str) -> None: ...


def _not_found(e: AmpdError) -> bool:
    cause = e.__cause__
    response = getattr(cause, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in _NOT_FOUND


def _probe(call: str, fn: Callable[[], None]) -> tuple[str, str]:
    """('denied' | 'allowed' | 'unknown', detail)."""
    try:
        fn()
    except AccessDenied:
        return "denied", ""
    except TemporaryError as e:
        return "unknown", str(e)
    except PermanentError as e:
        if _not_found(e):
            return "allowed", call
        return "unknown", str(e)
    return "allowed", call  # it existed after all and is gone: the role can write


def observe_role_check(gateway: WriteProbes, workspace_id: str | None) -> Condition:
    """``ObserveRoleReadOnly``: True when the role cannot write AMP (on this workspace) nor
    IAM; False names what it can write; Unknown when AWS could not say."""
    probe = f"ampd-write-probe-{secrets.token_hex(6)}"
    results: list[tuple[str, str]] = []
    if workspace_id is not None:
        results.append(
            _probe(
                "aps:DeleteRuleGroupsNamespace",
                lambda: gateway.delete_rule_group(workspace_id, probe),
            )
        )
    results.append(
        _probe("iam:DeleteRolePolicy", lambda: gateway.delete_inline_policy(probe, probe))
    )
    allowed = [detail for verdict, detail in results if verdict == "allowed"]
    if allowed:
        return Condition(
            CONDITION,
            ConditionStatus.FALSE,
            "RoleCanWrite",
            f"aws.mode is observe but this host's role may call {', '.join(allowed)}: "
            "give fleet hosts a role that can only write samples and read the workspace",
        )
    unknown = [detail for verdict, detail in results if verdict == "unknown"]
    if unknown:
        return Condition(CONDITION, ConditionStatus.UNKNOWN, "CheckFailed", unknown[0])
    return Condition(
        CONDITION,
        ConditionStatus.TRUE,
        "ReadOnly",
        "this host's role cannot write the AMP or IAM control plane",
    )


# Not at boot: a fleet that boots together would add two calls per host to the boot's
# budget (docs/fleet.md: at most 2, the state read included). The probes run on the
# first pass this long after the host's first observe pass (the resync timer brings one).
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

    def condition(self, gateway: WriteProbes, who: str, workspace_id: str | None) -> Condition:
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
                "(two probe calls, kept out of the fleet's boot)",
            )
        self._done[key] = observe_role_check(gateway, workspace_id)
        return self._done[key]
