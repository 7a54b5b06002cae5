"""AWS plan (pure): desired resources + observed live state + last-applied hashes -> Plan.

Desired and observed state are both flat field mappings per ``ResourceKey``, so one
function compares them all:

- live absent                          -> create
- live differs in a mutable field      -> update (immutable fields -> ``skipped``)
- desired says "must not exist"        -> delete (only what carries ampd's tags)
- live not desired but ampd's          -> delete under ``deletion: delete``, else skipped
- AWS still working on it (CREATING, UPDATING, DELETING) -> nothing, until it settles
- AWS failed it (CREATION_FAILED, UPDATE_FAILED)  -> updated only when the state file no
  longer asks for what failed (the desired inputs differ from the ones ampd last wrote);
  on the same inputs it is not written again, and is reported DEGRADED
- an IAM role or instance profile that exists without this stack's tags, anything that
  hangs off such a role, or a trust the state may not ask for -> skipped, never written
  (``iam_refusal``; ``ampd adopt`` hands one over)

A difference is *drift* when the desired state is the one ampd last applied (its hash is
in ``applied``): the live resource moved, not the state file. Drift is corrected (listed
in ``changes`` too) only with ``drift: correct`` in ``mode: manage``; in ``mode: observe``
every difference is reported in ``drift`` and nothing is planned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ampd.aws.model import (
    FAILED,
    IAM_KINDS,
    MANAGED_TAG,
    NOT_OWNED,
    TRANSITIONAL,
    Desired,
    Live,
    Observed,
    Policy,
    Unreadable,
    canonical,
    fingerprint,
)
from ampd.core import Action, Change, FieldDiff, Kind, Plan, ResourceKey, Skipped

__all__ = ["Refusal", "iam_refusal", "plan_resources"]

# -- what ampd may write in IAM ---------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why an IAM resource the state names is not written. ``code``: ``not_owned`` (it
    exists without this stack's tags), ``role_not_owned`` (it hangs off such a role),
    ``other_stack``, or ``trust`` (its desired trust names a principal outside the trusted
    accounts)."""

    key: ResourceKey
    code: Literal["not_owned", "role_not_owned", "other_stack", "trust"]
    reason: str


def _owner(live: Live | Unreadable | None, stack: str) -> str | None:
    """None when ampd may write ``live`` (absent, unreadable or this stack's), else why."""
    if not isinstance(live, Live) or live.stack == stack:
        return None
    return "other_stack" if live.stack is not None else "not_owned"


def iam_refusal(d: Desired, observed: Observed, stack: str) -> Refusal | None:
    """Writes go only to IAM resources that carry this stack's ownership tags (or that ampd
    creates): an existing role or instance profile without them is never written, nor
    anything that hangs off such a role (its policies, an instance profile holding it).
    A desired value refused as such (``Desired.refused``) is never written either. Pure."""
    if d.key.kind not in IAM_KINDS or not d.managed:
        return None
    roles: list[str] = []
    if d.key.kind is Kind.IAM_POLICY:
        roles = [d.key.name.partition("/")[0]]
    elif d.key.kind is Kind.INSTANCE_PROFILE:
        roles = [str(r) for r in d.fields.get("roles") or []]
    live = observed.get(d.key)
    if d.key.kind is not Kind.IAM_POLICY:
        code = _owner(live, stack)
        if code == "not_owned":
            return Refusal(d.key, "not_owned", NOT_OWNED)
        if code == "other_stack" and isinstance(live, Live):
            why = f"belongs to ampd stack {live.stack!r}; left alone"
            return Refusal(d.key, "other_stack", why)
    for role in roles:
        role_live = observed.get(ResourceKey(Kind.IAM_ROLE, role))
        code = _owner(role_live, stack)
        if code is not None:
            why = NOT_OWNED if code == "not_owned" else "belongs to another ampd stack"
            return Refusal(d.key, "role_not_owned", f"its role {role} {why}")
    if d.refused:
        return Refusal(d.key, "trust", d.refused)
    return None


# -- the plan -----------------------------------------------------------------------------


def _wanted_fields(desired: Desired, live: Live, stack: str) -> dict[str, Any]:
    """Desired fields as they apply to this live resource.

    A resource ampd did not create (adopted because the state file names it) never gets
    ampd's tags, and only the tag keys the state file names are managed on it.
    """
    out = {k: v for k, v in desired.fields.items() if k not in desired.immutable}
    if "tags" in out and live.stack != stack:
        out["tags"] = {k: v for k, v in out["tags"].items() if not k.startswith("ampd:")}
    return out


def _live_value(name: str, desired_value: Any, live: Live, owned: bool) -> Any:
    value = live.fields.get(name)
    if name == "tags":
        tags = {k: v for k, v in (value or {}).items() if not k.startswith("aws:")}
        if not owned:
            tags = {k: v for k, v in tags.items() if k in desired_value}
        return tags
    return value


def _diffs(desired: Desired, live: Live, stack: str) -> tuple[FieldDiff, ...]:
    owned = live.stack == stack
    out: list[FieldDiff] = []
    for name, want in _wanted_fields(desired, live, stack).items():
        have = _live_value(name, want, live, owned)
        if canonical(have) != canonical(want):
            out.append(FieldDiff(name, have, want))
    for name in sorted(desired.immutable):
        want = desired.fields.get(name)
        have = live.fields.get(name)
        if want is not None and have != want:
            out.append(FieldDiff(name, have, want))
    return tuple(out)


_DELETE_ORDER = {
    Kind.RULE_GROUP: 0,
    Kind.ALERTMANAGER: 0,
    Kind.LOGGING: 0,
    Kind.QUERY_LOGGING: 0,
    Kind.RESOURCE_POLICY: 0,
    Kind.WORKSPACE_CONFIGURATION: 0,
    Kind.INSTANCE_PROFILE: 1,
    Kind.IAM_POLICY: 2,
    Kind.IAM_ROLE: 3,
    Kind.WORKSPACE: 4,
}


def plan_resources(  # noqa: PLR0915 (the decision table, in one place)
    desired: Sequence[Desired],
    observed: Observed,
    applied: Mapping[str, str],
    policy: Policy,
    orphans: Sequence[Live] = (),
) -> Plan:
    """Compare; decide change, drift or skip per resource. Pure."""
    changes: list[Change] = []
    drift: list[Change] = []
    skipped: list[Skipped] = []

    def route(change: Change, drifted: bool, d: Desired) -> None:
        if not d.managed:
            skipped.append(Skipped(d.key, f"not managed ({d.note}): {change.reason}", change.diffs))
        elif policy.mode == "observe":
            drift.append(change)
        elif drifted:
            drift.append(change)
            if policy.drift == "correct":
                changes.append(change)
        else:
            changes.append(change)

    for d in desired:
        live = observed.get(d.key, Unreadable(d.key, "not read"))
        if isinstance(live, Unreadable):
            continue
        last = applied.get(str(d.key))
        drifted = last is not None and last == fingerprint(d)
        if live is None and not d.present:
            continue
        refusal = iam_refusal(d, observed, policy.stack)
        if refusal is not None:
            skipped.append(Skipped(d.key, refusal.reason))
            continue
        if live is None:
            diffs = tuple(FieldDiff(k, None, v) for k, v in d.fields.items())
            reason = "deleted outside ampd; recreating" if drifted else "does not exist"
            route(Change(d.key, Action.CREATE, None, dict(d.fields), diffs, reason), drifted, d)
            continue
        if live.stack is not None and live.stack != policy.stack:
            skipped.append(Skipped(d.key, f"belongs to ampd stack {live.stack!r}; left alone"))
            continue
        if not d.present:
            if live.stack != policy.stack:
                skipped.append(Skipped(d.key, "not created by ampd; never deleted"))
                continue
            reason = "replaced by the policy the state file asks for"
            route(Change(d.key, Action.DELETE, dict(live.fields), None, (), reason), False, d)
            continue
        if live.status in TRANSITIONAL:
            continue  # nothing can be changed until AWS settles; looked at again soon
        if live.status in FAILED and (d.key.kind is Kind.WORKSPACE or drifted):
            continue  # it failed on these same inputs: not written again (reported DEGRADED)
        diffs = _diffs(d, live, policy.stack)
        fixed = tuple(x for x in diffs if x.field in d.immutable)
        mutable = tuple(x for x in diffs if x.field not in d.immutable)
        if fixed:
            names = ", ".join(x.field for x in fixed)
            skipped.append(
                Skipped(d.key, f"{names} can be set only at creation; live value kept", fixed)
            )
        reason = "changed outside ampd" if drifted else "differs from the state file"
        if live.status in FAILED:
            # what failed was other inputs (or not ampd's): write these, even when AMP kept
            # the data of before the failed update and it equals them (a file put back)
            wanted = _wanted_fields(d, live, policy.stack)
            mutable = mutable or tuple(
                FieldDiff(k, live.fields.get(k), v) for k, v in wanted.items() if k != "tags"
            )
            reason = f"AWS reports {live.status}; the state file asks for other inputs"
        if not mutable:
            continue
        after = {**live.fields, **_wanted_fields(d, live, policy.stack)}
        route(Change(d.key, Action.UPDATE, dict(live.fields), after, mutable, reason), drifted, d)

    deletions: list[Change] = []
    for live in orphans:
        if live.key.kind is Kind.WORKSPACE_CONFIGURATION:
            why = "no longer in the state file; AMP keeps its values (it cannot be deleted)"
            skipped.append(Skipped(live.key, why))
        elif policy.mode == "observe" or policy.deletion == "retain":
            skipped.append(
                Skipped(live.key, "no longer in the state file; kept (deletion: retain)")
            )
        elif live.stack != policy.stack:
            skipped.append(
                Skipped(live.key, f"not tagged {MANAGED_TAG}=true for this stack; never deleted")
            )
        else:
            reason = "no longer in the state file (deletion: delete)"
            deletions.append(Change(live.key, Action.DELETE, dict(live.fields), None, (), reason))
    deletions.sort(key=lambda c: (_DELETE_ORDER.get(c.key.kind, 0), c.key))
    return Plan(tuple(changes + deletions), tuple(drift), tuple(skipped))
