"""A plan, printed like ``terraform plan``: ``+ create``, ``~ update``, ``! drift``,
``- skipped``; and its JSON form."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ampd.core import Action, Change, Outcome, Plan

SYMBOL = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.RESTART: "↻",
    Action.RELOAD: "⟳",
    Action.NOOP: " ",
}
COLOR = {"+": "32", "~": "33", "-/+": "35", "-": "31", "!": "35", "↻": "36", "⟳": "36", "·": "2"}


def _paint(text: str, sym: str, color: bool) -> str:
    return f"\x1b[{COLOR.get(sym, '0')}m{text}\x1b[0m" if color else text


def _short(v: Any) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= 80 else s[:77] + "..."


def _change_lines(c: Change, sym: str, color: bool) -> list[str]:
    head = f"{sym} {c.key} ({c.action.value})"
    if c.reason:
        head += f": {c.reason}"
    lines = [_paint(head, sym, color)]
    lines += [f"    {d.field}: {_short(d.before)} -> {_short(d.after)}" for d in c.diffs]
    return lines


def plan_text(plan: Plan, *, color: bool, outcomes: Sequence[Outcome] = ()) -> str:
    result = {o.change.key: o for o in outcomes}
    lines: list[str] = []
    for c in plan.changes:
        lines += _change_lines(c, SYMBOL[c.action], color)
        o = result.get(c.key)
        if o is not None:
            lines.append(f"    => {'done' if o.ok else 'FAILED: ' + o.message}")
    changed = {c.key for c in plan.changes}
    for c in plan.drift:
        if c.key not in changed:
            lines += _change_lines(c, "!", color)
            lines.append("    (drift reported, not corrected)")
    for s in plan.skipped:
        lines.append(_paint(f"· {s.key} skipped: {s.reason}", "·", color))
    n_drift = len(plan.drift)
    if plan.in_sync and not plan.skipped:
        lines.append("No changes. Everything is in sync.")
    else:
        lines.append(
            f"Plan: {len(plan.changes)} to change, {n_drift} drifted, {len(plan.skipped)} skipped."
        )
    return "\n".join(lines) + "\n"


def _change_json(c: Change) -> dict[str, Any]:
    return {
        "key": str(c.key),
        "kind": c.key.kind.value,
        "name": c.key.name,
        "action": c.action.value,
        "reason": c.reason,
        "diffs": [{"field": d.field, "before": d.before, "after": d.after} for d in c.diffs],
    }


def plan_json(plan: Plan, outcomes: Sequence[Outcome] = ()) -> dict[str, Any]:
    return {
        "schema": "ampd.plan/v1",
        "in_sync": plan.in_sync,
        "changes": [_change_json(c) for c in plan.changes],
        "drift": [_change_json(c) for c in plan.drift],
        "skipped": [{"key": str(s.key), "reason": s.reason} for s in plan.skipped],
        "outcomes": [
            {
                "key": str(o.change.key),
                "action": o.change.action.value,
                "ok": o.ok,
                "message": o.message,
            }
            for o in outcomes
        ],
    }
