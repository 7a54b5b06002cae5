"""What the local side reports: statuses and conditions from what was seen, planned and
(when the pass applied) done and read back. Pure.

Without ``done`` (``ampd plan``) the plan's changes are pending and the processes are as
observed; with it, the processes are as read back after acting.
"""

from __future__ import annotations

from ampd.core import Condition, Health, SideResult
from ampd.engine.retry import RetryBook
from ampd.local.plan.local import LocalPlan
from ampd.local.plan.values import LocalDone, LocalSeen
from ampd.local.report.backlog import backlog_condition
from ampd.local.report.owners import listeners_condition
from ampd.local.report.proxy import proxy_conditions
from ampd.local.report.statuses import LocalSnapshot, local_statuses
from ampd.spec.checks import proxy_enabled

__all__ = ["PROGRESS_RECHECK", "local_result"]

PROGRESS_RECHECK = 0.5  # a pass follows this soon when something is still starting


def local_result(seen: LocalSeen, plan: LocalPlan, done: LocalDone | None) -> SideResult:
    probed = done.probed if done is not None else seen.probed
    outcomes = done.outcomes if done is not None else ()
    snap = LocalSnapshot(
        files=sorted(plan.rendered),
        plan=plan.plan,
        outcomes=outcomes,
        applied=done is not None,
        processes=probed.processes,
        listens=plan.listens,
        probes=probed.probes,
        last_change=done.last_change if done is not None else seen.last_change,
        now=seen.now,
    )
    statuses = local_statuses(snap)
    conditions: list[Condition] = list(done.conditions) if done is not None else []
    owned = listeners_condition(probed.squatted, checked=bool(plan.listens))
    backlog = backlog_condition(plan.spec, seen.remote_write_lag)
    conditions += [c for c in (owned, seen.flow, backlog) if c is not None]
    spec = plan.spec
    if spec.proxy is not None and proxy_enabled(spec):
        conditions += proxy_conditions(spec, probed.proxy_metrics)
    if probed.config_loaded is not None:
        conditions.append(probed.config_loaded)
    hints = [plan.wake - seen.now] if plan.wake is not None else []
    if any(s.health == Health.PROGRESSING for s in statuses):
        hints.append(PROGRESS_RECHECK)
    prom_up = (
        spec.prometheus is not None and spec.prometheus.enabled and "prometheus" in probed.probes
    )
    return SideResult(
        plan=plan.plan,
        outcomes=outcomes,
        statuses=tuple(statuses),
        conditions=tuple(conditions),
        requeue_after=RetryBook.requeue_after(outcomes, hints),
        targets=probed.targets if prom_up else None,
    )
