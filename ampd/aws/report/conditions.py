"""The AWS side's status and conditions, computed from what one pass observed. Pure.

Input is an :class:`AwsSnapshot`: what was desired, what was read, what was planned and
what happened. Output is one :class:`ResourceStatus` per resource and the conditions
``AwsReachable``, ``WorkspaceActive``, ``IamReady`` and ``AwsAuthorized``, and one per
configuration AMP holds for the workspace (``LoggingActive``, ... in ``report.aws_amp``). Transition
times are not decided here: the pass merges conditions once, for both sides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ampd.aws.model import (
    AMP_CHILDREN,
    FAILED,
    TRANSITIONAL,
    Desired,
    Live,
    Unreadable,
    workspace_key,
)
from ampd.aws.plan.resources import Refusal, iam_refusal
from ampd.aws.report.amp import amp_conditions, amp_status_text
from ampd.core import (
    Condition,
    ConditionStatus,
    Health,
    Kind,
    Outcome,
    Plan,
    ResourceKey,
    ResourceStatus,
    SyncStatus,
    WorkspaceRecord,
)
from ampd.spec.models import StateSpec

IAM_KINDS = (Kind.IAM_ROLE, Kind.IAM_POLICY, Kind.INSTANCE_PROFILE)
AMP_KINDS = AMP_CHILDREN


@dataclass(frozen=True)
class AwsSnapshot:
    spec: StateSpec
    region: str
    desired: Mapping[ResourceKey, Desired]
    observed: Mapping[ResourceKey, Live | Unreadable | None]
    errors: Mapping[ResourceKey, str]  # desired state unknown (a file unreadable, ...)
    waiting: Mapping[ResourceKey, str]  # not planned yet (the workspace is not ACTIVE)
    plan: Plan
    outcomes: Sequence[Outcome]
    workspace: Live | None
    now: float  # wall clock, for last_change of what was applied


def workspace_health(status: str | None) -> Health:
    if status == "ACTIVE":
        return Health.HEALTHY
    if status in TRANSITIONAL:
        return Health.PROGRESSING
    if status in FAILED:
        return Health.DEGRADED
    return Health.UNKNOWN


def workspace_record(s: AwsSnapshot) -> WorkspaceRecord | None:
    ws = s.workspace
    if s.spec.workspace is None or ws is None:
        return None
    return WorkspaceRecord.at(
        str(ws.details["id"]),
        s.region,
        data_plane_url=s.spec.aws_or_default.data_plane_url,
        arn=str(ws.details.get("arn") or "") or None,
        alias=ws.fields.get("alias"),
    )


def reported_keys(s: AwsSnapshot) -> list[ResourceKey]:
    """Resources that get a status: what is desired to exist (or is being deleted) and
    what could not even be described."""
    changed = {c.key for c in s.plan.changes}
    keys = [k for k, d in s.desired.items() if d.present or k in changed]
    return keys + [k for k in s.errors if k not in s.desired]


def in_sync_keys(s: AwsSnapshot) -> list[ResourceKey]:
    """Resources seen exactly as desired this pass (their inputs may be remembered)."""
    changed = {c.key for c in s.plan.changes} | {c.key for c in s.plan.drift}
    out = []
    for key, d in s.desired.items():
        live = s.observed.get(key)
        settled = isinstance(live, Live) and live.status not in TRANSITIONAL | FAILED
        if d.present and key not in changed and settled:
            out.append(key)
    return out


def resource_status(s: AwsSnapshot, key: ResourceKey) -> ResourceStatus:
    if key in s.errors:
        return ResourceStatus(key, SyncStatus.UNKNOWN, Health.DEGRADED, s.errors[key])
    if key in s.waiting:
        return ResourceStatus(key, SyncStatus.UNKNOWN, Health.PROGRESSING, s.waiting[key])
    live = s.observed.get(key)
    if isinstance(live, Unreadable):
        health = Health.DEGRADED if live.permanent else Health.UNKNOWN
        return ResourceStatus(key, SyncStatus.UNKNOWN, health, live.error)
    outcome = next((o for o in reversed(s.outcomes) if o.change.key == key), None)
    details = _details(s, live)
    refusal = refused(s, key)
    if refusal is not None:
        message = f"skipped ({refusal.reason})"
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.DEGRADED, message, None, details)
    if outcome is not None:
        if outcome.ok:
            health, message = Health.HEALTHY, outcome.message
            if key.kind is Kind.WORKSPACE and s.workspace is not None:
                health = workspace_health(s.workspace.status)
                if s.workspace.status and s.workspace.status != "ACTIVE":
                    done = f"{outcome.change.action.value}d"  # "created; AWS reports CREATING"
                    message = f"{done}; AWS reports {s.workspace.status}"
            elif key.kind in AMP_KINDS and isinstance(live, Live) and live.status:
                health = workspace_health(live.status)  # as AMP read it back after the write
                if live.status != "ACTIVE":
                    # "created; AWS reports CREATING", not the plan's "does not exist; ..."
                    done = f"{outcome.change.action.value}d"
                    message = f"{done}; {amp_status_text(live)}"
            return ResourceStatus(key, SyncStatus.SYNCED, health, message, s.now, details)
        health = Health.DEGRADED if outcome.permanent else Health.PROGRESSING
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, health, outcome.message, None, details)
    planned = next((c for c in (*s.plan.changes, *s.plan.drift) if c.key == key), None)
    if planned is not None:
        health = Health.MISSING if live is None else Health.HEALTHY
        if key.kind in AMP_KINDS and isinstance(live, Live) and live.status:
            health = workspace_health(live.status)  # a FAILED one stays Degraded until fixed
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, health, planned.reason, None, details)
    if live is None:
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.MISSING, "does not exist")
    health = Health.HEALTHY
    if key.kind is Kind.WORKSPACE or (key.kind in AMP_KINDS and live.status):
        health = workspace_health(live.status)
    message = ""
    if live.status in FAILED:
        message = f"{amp_status_text(live)}; not written again until the state file changes"
    elif live.status in TRANSITIONAL:
        message = f"AWS reports {live.status}; looked at again soon"
    skipped = next((x.reason for x in s.plan.skipped if x.key == key), "")
    return ResourceStatus(key, SyncStatus.SYNCED, health, message or skipped, None, details)


def _details(s: AwsSnapshot, live: Live | Unreadable | None) -> dict[str, object]:
    """What was read, and for the workspace its Prometheus endpoint: derived from the
    region and the id like every data-plane URL (a ListWorkspaces summary has none)."""
    if not isinstance(live, Live):
        return {}
    details = dict(live.details)
    if live.key.kind is Kind.WORKSPACE and live.details.get("id"):
        ws_id = str(live.details["id"])
        record = WorkspaceRecord.at(
            ws_id, s.region, data_plane_url=s.spec.aws_or_default.data_plane_url
        )
        details["prometheus_endpoint"] = f"{record.base_url}/workspaces/{ws_id}/"
    return details


def refused(s: AwsSnapshot, key: ResourceKey) -> Refusal | None:
    """Why ampd does not write this IAM resource (not its own, or a foreign trust)."""
    d = s.desired.get(key)
    if d is None or not d.present or key not in s.observed:
        return None
    if isinstance(s.observed[key], Unreadable):
        return None
    return iam_refusal(d, s.observed, s.spec.stack)


def _adopt_hint(r: Refusal) -> str:
    kind = {Kind.IAM_ROLE: "iam_role", Kind.INSTANCE_PROFILE: "instance_profile"}.get(r.key.kind)
    if r.code != "not_owned" or kind is None:
        return ""
    return f" (to let ampd manage it: ampd adopt {kind} {r.key.name})"


def iam_conditions(s: AwsSnapshot) -> list[Condition]:
    """``IamOwned``: every IAM resource the state names is this stack's (or is to be
    created), else which are not and are left alone. ``IamTrustScoped``: the reader trusts
    principals of this account (or of ``iam.reader.trusted_accounts``) only."""
    refusals = [r for key in s.desired if (r := refused(s, key)) is not None]
    others = [r for r in refusals if r.code != "trust"]
    foreign = [
        Refusal(d.key, "trust", d.refused)
        for d in s.desired.values()
        if d.refused and d.managed and d.key.kind is Kind.IAM_ROLE
    ]
    out: list[Condition] = []
    if others:
        text = "; ".join(f"{r.key}: {r.reason}{_adopt_hint(r)}" for r in others[:5])
        out.append(Condition("IamOwned", ConditionStatus.FALSE, "NotCreatedByAmpd", text))
    else:
        out.append(Condition("IamOwned", ConditionStatus.TRUE, "Owned"))
    if foreign:
        text = "; ".join(f"{r.key}: {r.reason}" for r in foreign)
        out.append(Condition("IamTrustScoped", ConditionStatus.FALSE, "ForeignPrincipal", text))
    else:
        out.append(Condition("IamTrustScoped", ConditionStatus.TRUE, "OwnAccount"))
    return out


def _denied(s: AwsSnapshot) -> list[str]:
    out = [o.message for o in s.outcomes if not o.ok and "AccessDenied" in o.message]
    out += [
        v.error
        for v in s.observed.values()
        if isinstance(v, Unreadable) and v.permanent and "AccessDenied" in v.error
    ]
    return sorted(set(out))


def aws_conditions(s: AwsSnapshot, statuses: Sequence[ResourceStatus]) -> list[Condition]:
    out = [Condition("AwsReachable", ConditionStatus.TRUE, "Connected")]
    ws = s.workspace
    if s.spec.workspace is not None:
        if ws is not None and ws.status == "ACTIVE":
            out.append(Condition("WorkspaceActive", ConditionStatus.TRUE, "Active", "ACTIVE"))
        elif ws is not None:
            reason = (ws.status or "Unknown").title().replace("_", "")
            message = f"workspace {ws.details['id']} is {ws.status}"
            out.append(Condition("WorkspaceActive", ConditionStatus.FALSE, reason, message))
        else:
            live = s.observed.get(workspace_key(s.spec))
            unreadable = isinstance(live, Unreadable)
            message = live.error if isinstance(live, Unreadable) else "no workspace yet"
            status = ConditionStatus.UNKNOWN if unreadable else ConditionStatus.FALSE
            out.append(Condition("WorkspaceActive", status, "Missing", message))
        out += amp_conditions(s.desired, s.observed, s.waiting, s.errors, statuses)
    if s.spec.iam is not None:
        bad = [x for x in statuses if x.key.kind in IAM_KINDS and x.sync is not SyncStatus.SYNCED]
        if bad:
            text = "; ".join(f"{x.key}: {x.message or x.sync.value}" for x in bad[:5])
            out.append(Condition("IamReady", ConditionStatus.FALSE, "NotReady", text))
        else:
            out.append(Condition("IamReady", ConditionStatus.TRUE, "Ready"))
        out += iam_conditions(s)
    denied = _denied(s)
    if denied:
        text = "; ".join(denied[:5])
        out.append(Condition("AwsAuthorized", ConditionStatus.FALSE, "AccessDenied", text))
    else:
        out.append(Condition("AwsAuthorized", ConditionStatus.TRUE, "Authorized"))
    return out


def unobserved(s: AwsSnapshot) -> list[str]:
    """What this pass could not read: a plan built on it is not a plan."""
    return [f"{v.key}: {v.error}" for v in s.observed.values() if isinstance(v, Unreadable)] + [
        f"{k}: {m}" for k, m in s.errors.items()
    ]


def unreachable_conditions(reason: str, message: str) -> list[Condition]:
    return [
        Condition("AwsReachable", ConditionStatus.FALSE, reason, message),
        Condition("WorkspaceActive", ConditionStatus.UNKNOWN, "AwsUnreachable", ""),
    ]
