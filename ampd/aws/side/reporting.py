"""The AWS side's report: statuses, conditions, the requeue and the workspace record,
from what observe saw, what plan decided and what apply did. Pure: no store, no gateway,
no retry book (its numbers travel in the values)."""

from __future__ import annotations

from collections.abc import Iterator

from ampd.aws.gateway.client import CredentialsRejected
from ampd.aws.model import TRANSITIONAL, Live, workspace_key
from ampd.aws.report.conditions import (
    AwsSnapshot,
    aws_conditions,
    reported_keys,
    resource_status,
    unobserved,
    unreachable_conditions,
    workspace_record,
)
from ampd.aws.side.planning import AMP_CHILDREN
from ampd.aws.side.values import AwsDone, AwsPlan, AwsSeen, Wave
from ampd.core import Health, ResourceStatus, SideResult, SyncStatus, WorkspaceRecord
from ampd.engine.retry import RetryBook
from ampd.errors import AmpdError, PermanentError
from ampd.gateways.store import StoredState
from ampd.spec.models import StateSpec

__all__ = ["WORKSPACE_POLL", "report_pass", "snapshot", "unreachable_result"]

WORKSPACE_POLL = 5.0  # CREATING/UPDATING: look again soon


def report_pass(seen: AwsSeen, plan: AwsPlan, done: AwsDone | None) -> SideResult:
    spec = seen.spec
    if spec.workspace is None and spec.iam is None:
        return SideResult()
    if seen.failure is not None:
        return unreachable_result(spec, seen.stored, seen.region, seen.failure, seen.retry_after)
    if done is not None and done.failure is not None:
        stored = done.stored or seen.stored
        return unreachable_result(spec, stored, seen.region, done.failure, done.retry_after)
    snap = snapshot(seen, plan, done)
    statuses = [resource_status(snap, key) for key in reported_keys(snap)]
    conditions = aws_conditions(snap, statuses)
    if done is not None and done.role_check is not None:
        conditions.append(done.role_check)
    hints = [*_polls(snap), *seen.read_retries, *(done.read_retries if done else ())]
    return SideResult(
        plan=snap.plan,
        outcomes=tuple(snap.outcomes),
        statuses=tuple(statuses),
        conditions=tuple(conditions),
        requeue_after=RetryBook.requeue_after(snap.outcomes, hints),
        unobserved=tuple(unobserved(snap)),
        workspace=workspace_record(snap),
    )


def waves(plan: AwsPlan, done: AwsDone | None) -> tuple[Wave, Wave]:
    """The waves as carried out: wave 2 as apply planned it again, when it did."""
    wave2 = done.wave2 if done is not None and done.wave2 is not None else plan.wave2
    return plan.wave1, wave2


def snapshot(seen: AwsSeen, plan: AwsPlan, done: AwsDone | None) -> AwsSnapshot:
    assert seen.region is not None
    wave1, wave2 = waves(plan, done)
    observed = {**wave1.observed, **wave2.observed, **(done.read_back if done else {})}
    workspace = done.workspace if done is not None else seen.live_workspace
    return AwsSnapshot(
        spec=seen.spec,
        region=seen.region,
        desired={**wave1.desired, **wave2.desired},
        observed=observed,
        errors={**wave1.errors, **wave2.errors},
        waiting={**wave1.waiting, **wave2.waiting},
        plan=wave1.plan + wave2.plan,
        outcomes=done.outcomes if done is not None else (),
        workspace=workspace if seen.spec.workspace is not None else None,
        now=seen.wall,
    )


def _polls(snap: AwsSnapshot) -> Iterator[float]:
    ws = snap.workspace
    if ws is not None and ws.status in TRANSITIONAL:
        yield WORKSPACE_POLL
    if any(k.kind in AMP_CHILDREN for k in snap.waiting):
        yield WORKSPACE_POLL
    if any(isinstance(v, Live) and v.status in TRANSITIONAL for v in snap.observed.values()):
        yield WORKSPACE_POLL  # AMP is still applying a configuration


def unreachable_result(
    spec: StateSpec,
    stored: StoredState,
    region: str | None,
    e: AmpdError,
    delay: float | None,
) -> SideResult:
    """AWS could not be reached (or asked at all): the last known workspace, and why."""
    permanent = isinstance(e, PermanentError)
    workspace = stored.workspace
    if workspace is None and stored.workspace_id and region is not None:
        workspace = WorkspaceRecord.at(
            stored.workspace_id, region, data_plane_url=spec.aws_or_default.data_plane_url
        )
    reason = "RegionUnknown" if region is None else ("Denied" if permanent else "Unreachable")
    if isinstance(e, CredentialsRejected):
        reason = e.reason
    key = workspace_key(spec)
    status = ResourceStatus(key, SyncStatus.UNKNOWN, Health.UNKNOWN, str(e))
    return SideResult(
        conditions=tuple(unreachable_conditions(reason, str(e))),
        statuses=(status,),
        workspace=workspace if spec.workspace is not None else None,
        requeue_after=delay,
        unobserved=(f"AWS: {e}",),
    )
