"""Conditions for the configurations AMP holds for the workspace, from AMP's own status. Pure.

``WorkspaceConfigurationActive``, ``LoggingActive``, ``QueryLoggingActive``,
``ResourcePolicyInSync``, ``AlertManagerActive`` and ``RuleGroupsActive``: each only when
the state file asks for that resource. True when AMP reports it ACTIVE; False with AMP's
status as the reason (``CreationFailed``, ``UpdateFailed``, ``Creating``, ``Updating``,
``Deleting``) and AMP's ``statusReason`` in the message, or ``Missing`` /
``WaitingForWorkspace``; ``ConcurrentEdit`` when a write found it edited since it was
read (nothing overwritten: read again next pass); for the resource policy also
``OutOfSync`` while AMP's differs from the state's (``aws.mode: observe``, ``drift:
report``); Unknown when it could not be read, or its file could not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ampd.aws.model import CONCURRENT_EDIT, Desired, Live, Unreadable
from ampd.core import Condition, ConditionStatus, Kind, ResourceKey, ResourceStatus, SyncStatus

__all__ = ["AMP_CONDITIONS", "amp_conditions", "amp_reason", "amp_status_text"]

AMP_CONDITIONS: dict[Kind, str] = {
    Kind.WORKSPACE_CONFIGURATION: "WorkspaceConfigurationActive",
    Kind.LOGGING: "LoggingActive",
    Kind.QUERY_LOGGING: "QueryLoggingActive",
    Kind.RESOURCE_POLICY: "ResourcePolicyInSync",
    Kind.ALERTMANAGER: "AlertManagerActive",
    Kind.RULE_GROUP: "RuleGroupsActive",
}

_MAX_LISTED = 5


def amp_reason(status: str | None) -> str:
    """``CREATION_FAILED`` -> ``CreationFailed``."""
    return (status or "Unknown").title().replace("_", "")


def amp_status_text(live: Live) -> str:
    """``AWS reports UPDATE_FAILED: <AMP's statusReason>``."""
    why = live.details.get("status_reason")
    return f"AWS reports {live.status}" + (f": {why}" if why else "")


def _verdict(
    key: ResourceKey,
    observed: Mapping[ResourceKey, Live | Unreadable | None],
    waiting: Mapping[ResourceKey, str],
    errors: Mapping[ResourceKey, str],
    statuses: Mapping[ResourceKey, ResourceStatus],
) -> tuple[ConditionStatus, str, str]:
    if key in errors:
        return ConditionStatus.UNKNOWN, "StateFileError", f"{key}: {errors[key]}"
    if key in waiting:
        return ConditionStatus.FALSE, "WaitingForWorkspace", f"{key}: {waiting[key]}"
    live = observed.get(key)
    if isinstance(live, Unreadable):
        return ConditionStatus.UNKNOWN, "Unreadable", f"{key}: {live.error}"
    st = statuses.get(key)
    if st is not None and st.message.startswith(CONCURRENT_EDIT):
        return ConditionStatus.FALSE, "ConcurrentEdit", f"{key}: {st.message}"
    if live is None:
        why = st.message if st is not None and st.message else "does not exist"
        return ConditionStatus.FALSE, "Missing", f"{key}: {why}"
    if live.status not in (None, "ACTIVE"):
        return ConditionStatus.FALSE, amp_reason(live.status), f"{key}: {amp_status_text(live)}"
    if key.kind is Kind.RESOURCE_POLICY and st is not None and st.sync is SyncStatus.OUT_OF_SYNC:
        return ConditionStatus.FALSE, "OutOfSync", f"{key}: {st.message or 'differs'}"
    return ConditionStatus.TRUE, "Active", f"{key}: ACTIVE"


def amp_conditions(
    desired: Mapping[ResourceKey, Desired],
    observed: Mapping[ResourceKey, Live | Unreadable | None],
    waiting: Mapping[ResourceKey, str],
    errors: Mapping[ResourceKey, str],
    statuses: Sequence[ResourceStatus],
) -> list[Condition]:
    by_key = {s.key: s for s in statuses}
    asked = [k for k, d in desired.items() if d.present] + [k for k in errors if k not in desired]
    out: list[Condition] = []
    for kind, ctype in AMP_CONDITIONS.items():
        keys = sorted(k for k in asked if k.kind is kind)
        if not keys:
            continue
        verdicts = [_verdict(k, observed, waiting, errors, by_key) for k in keys]
        bad = [v for v in verdicts if v[0] is ConditionStatus.FALSE]
        bad = bad or [v for v in verdicts if v[0] is ConditionStatus.UNKNOWN]
        if not bad:
            message = "ACTIVE" if len(keys) == 1 else f"{len(keys)} ACTIVE"
            out.append(Condition(ctype, ConditionStatus.TRUE, "Active", message))
            continue
        text = "; ".join(v[2] for v in bad[:_MAX_LISTED])
        if len(bad) > _MAX_LISTED:
            text += f"; and {len(bad) - _MAX_LISTED} more"
        out.append(Condition(ctype, bad[0][0], bad[0][1], text))
    return out
