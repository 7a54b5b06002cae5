"""Running one AWS change, and remembering what was applied.

:class:`ChangeRunner` asks the retry book first (a change that failed for good on these
same inputs is not tried again), runs the effect, turns what it raised into an
:class:`~ampd.core.Outcome`, records the outcome in the book, patches the observed cache
and persists the AWS side's part of ampd.json — unless the pass is a plan, which has no
writer and persists nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ampd.aws.gateway.client import (
    AlreadyExists,
    AwsGateway,
    AwsUnreachable,
    CredentialsRejected,
    Identity,
    ResourceGone,
)
from ampd.aws.model import TRANSITIONAL, Desired, Live, Unreadable, fingerprint, workspace_key
from ampd.aws.observe import ObservedCache, read_children
from ampd.aws.report.conditions import (
    AwsSnapshot,
    aws_conditions,
    in_sync_keys,
    reported_keys,
    resource_status,
    unobserved,
    unreachable_conditions,
    workspace_record,
)
from ampd.core import (
    Action,
    Change,
    Health,
    Kind,
    Outcome,
    Plan,
    ResourceKey,
    ResourceStatus,
    SideResult,
    SyncStatus,
    WorkspaceRecord,
)
from ampd.engine.retry import RetryBook
from ampd.errors import AmpdError, PermanentError, TemporaryError
from ampd.gateways.store import Store, StoredState
from ampd.spec.models import StateSpec

log = structlog.get_logger()

WORKSPACE_POLL = 5.0  # CREATING/UPDATING: look again soon
REACHABILITY = "aws.reachability"
AMP_CHILDREN = frozenset(
    {Kind.WORKSPACE_CONFIGURATION, Kind.LOGGING, Kind.RULE_GROUP, Kind.ALERTMANAGER}
)


@dataclass
class AwsPass:
    """Working state of one pass."""

    spec: StateSpec
    region: str
    identity: Identity
    stored: StoredState
    writer: Store | None  # None: a plan, which writes nothing
    desired: dict[ResourceKey, Desired] = field(default_factory=dict)
    observed: dict[ResourceKey, Live | Unreadable | None] = field(default_factory=dict)
    errors: dict[ResourceKey, str] = field(default_factory=dict)
    waiting: dict[ResourceKey, str] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)
    outcomes: list[Outcome] = field(default_factory=list)
    workspace: Live | None = None

    @property
    def apply(self) -> bool:
        return self.writer is not None and self.spec.aws_or_default.mode == "manage"


class ChangeRunner:
    def __init__(self, book: RetryBook, cache: ObservedCache) -> None:
        self._book = book
        self._cache = cache

    def run(self, p: AwsPass, change: Change, effect: Callable[[Change], None]) -> bool:
        key = change.key
        desired = p.desired.get(key)
        fp = fingerprint(desired) if desired is not None else f"delete:{change.action}"
        remembered = self._book.blocked(key, fp)
        if remembered is not None:
            message = f"not retried until the state file changes: {remembered}"
            p.outcomes.append(Outcome(change, ok=False, permanent=True, message=message))
            return False
        try:
            effect(change)
        except AwsUnreachable:
            raise
        except (ResourceGone, AlreadyExists) as e:
            self._reread(p, change, e)
            return False
        except PermanentError as e:
            self._book.failed_permanently(key, fp, str(e))
            log.error("aws.change.failed", key=str(key), action=change.action.value, error=str(e))
            p.outcomes.append(Outcome(change, ok=False, message=str(e), permanent=True))
            return False
        except TemporaryError as e:
            delay = self._book.failed_temporarily(key, e.delay)
            log.warning(
                "aws.change.failed",
                key=str(key),
                action=change.action.value,
                error=str(e),
                retry_after=round(delay, 2),
            )
            p.outcomes.append(Outcome(change, ok=False, message=str(e), retry_after=delay))
            return False
        self._book.succeeded(key)
        log.info("aws.change.applied", key=str(key), action=change.action.value)
        p.outcomes.append(Outcome(change, ok=True, message=change.reason))
        self._after_change(p, change, desired, fp)
        return True

    def _reread(self, p: AwsPass, change: Change, e: ResourceGone | AlreadyExists) -> None:
        """What ampd remembered of the resource is stale: forget it and pass again at
        once, so the next pass plans from what AWS holds (a create for a resource deleted
        outside ampd; an update, an in-sync or a refusal for one that is there). Not a
        failure on these inputs: nothing is remembered against them. The book backs off
        only a repeat, so two writers fighting over it cannot spin."""
        key = change.key
        self._cache.forget(key)
        delay = self._book.failed_temporarily(key, e.delay)
        if isinstance(e, ResourceGone):
            p.observed[key] = None
            message = f"deleted outside ampd; read again and recreated on the next pass ({e})"
        else:
            message = f"already exists; read again on the next pass ({e})"
        log.warning(
            "aws.change.stale",
            key=str(key),
            action=change.action.value,
            error=str(e),
            retry_after=round(delay, 2),
        )
        p.outcomes.append(Outcome(change, ok=False, message=message, retry_after=delay))

    def _after_change(self, p: AwsPass, change: Change, desired: Desired | None, fp: str) -> None:
        key = change.key
        if change.action is Action.DELETE:
            self._cache.resources[key] = None
            p.stored.applied.pop(str(key), None)
            p.observed[key] = None
        else:
            if desired is not None:
                p.stored.applied[str(key)] = fp
            if key.kind in AMP_CHILDREN:
                # AMP validates these after answering: the pass reads them back (confirm)
                self._cache.resources.pop(key, None)
                if key.kind is Kind.RULE_GROUP and self._cache.rule_group_tags is not None:
                    tags = dict((change.after or {}).get("tags") or {})
                    self._cache.rule_group_tags[key.name] = tags
            elif key.kind is not Kind.WORKSPACE:
                fields = dict(change.after or {})
                self._cache.resources[key] = Live(key, fields, dict(fields.get("tags") or {}))
                if key.kind is Kind.IAM_POLICY and key.name.partition("/")[2].startswith("arn:"):
                    role, _, arn = key.name.partition("/")
                    self._cache.roles_attached.setdefault(role, []).append(arn)
        persist(p)


def confirm_writes(gw: AwsGateway, p: AwsPass, ws_live: Live | None, cache: ObservedCache) -> None:
    """AMP answers a configuration write before it validates it (CREATING, UPDATING,
    then ACTIVE or CREATION_FAILED/UPDATE_FAILED with a reason): read back what this
    pass wrote, so a rejected rule file is reported now, not at the next resync."""
    written = [
        p.desired[o.change.key]
        for o in p.outcomes
        if o.ok
        and o.change.action is not Action.DELETE
        and o.change.key.kind in AMP_CHILDREN
        and o.change.key in p.desired
    ]
    if not written or ws_live is None:
        return
    try:
        confirmed, _ = read_children(
            gw,
            stack=p.spec.stack,
            workspace=ws_live,
            desired=written,
            previously_applied=(),
            cache=cache,
        )
    except AwsUnreachable:
        return  # written; the next pass reads it
    p.observed.update({k: v for k, v in confirmed.items() if isinstance(v, Live)})


def persist(p: AwsPass) -> None:
    """Write the AWS side's part of ampd.json, leaving the local side's part alone.
    A plan has no writer and persists nothing."""
    if p.writer is None:
        return
    mine = p.stored

    def aws_part(s: StoredState) -> tuple[Any, ...]:
        applied = {k: v for k, v in s.applied.items() if k.startswith("aws.")}
        return (s.workspace_id, s.client_token, applied, s.workspace)

    def merge(s: StoredState) -> None:
        s.workspace_id = mine.workspace_id
        s.client_token = mine.client_token
        s.workspace = mine.workspace
        for k in [k for k in s.applied if k.startswith("aws.")]:
            del s.applied[k]
        s.applied.update({k: v for k, v in mine.applied.items() if k.startswith("aws.")})

    with p.writer.lock:
        if aws_part(p.writer.load()) != aws_part(mine):
            p.writer.update(merge)


def unreachable_result(
    book: RetryBook, spec: StateSpec, stored: StoredState, region: str | None, e: AmpdError
) -> SideResult:
    """AWS could not be reached (or asked at all): the last known workspace, and why."""
    permanent = isinstance(e, PermanentError)
    delay = None if permanent else book.failed_temporarily(REACHABILITY, _delay(e))
    log.warning("aws.unreachable", error=str(e), retry_after=delay)
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


def pass_result(p: AwsPass, book: RetryBook, now: float) -> SideResult:
    """Statuses, conditions and the requeue of a pass that reached AWS."""
    snap = AwsSnapshot(
        spec=p.spec,
        region=p.region,
        desired=p.desired,
        observed=p.observed,
        errors=p.errors,
        waiting=p.waiting,
        plan=p.plan,
        outcomes=tuple(p.outcomes),
        workspace=p.workspace if p.spec.workspace is not None else None,
        now=now,
    )
    statuses = [resource_status(snap, key) for key in reported_keys(snap)]
    if p.writer is not None:
        for key in in_sync_keys(snap):
            p.stored.applied[str(key)] = fingerprint(p.desired[key])
        persist(p)
    hints: list[float] = []
    ws = snap.workspace
    if ws is not None and ws.status in TRANSITIONAL:
        hints.append(WORKSPACE_POLL)
    if any(k.kind in AMP_CHILDREN for k in p.waiting):
        hints.append(WORKSPACE_POLL)
    if any(isinstance(v, Live) and v.status in TRANSITIONAL for v in p.observed.values()):
        hints.append(WORKSPACE_POLL)  # AMP is still applying a configuration
    for value in p.observed.values():
        if isinstance(value, Unreadable) and not value.permanent:
            hints.append(book.failed_temporarily(value.key, value.delay))
    return SideResult(
        plan=p.plan,
        outcomes=tuple(p.outcomes),
        statuses=tuple(statuses),
        conditions=tuple(aws_conditions(snap, statuses)),
        requeue_after=RetryBook.requeue_after(p.outcomes, hints),
        unobserved=tuple(unobserved(snap)),
        workspace=workspace_record(snap),
    )


def _delay(e: AmpdError) -> float:
    return e.delay if isinstance(e, TemporaryError) else 5.0


def spec_fingerprint(spec: StateSpec, files: Mapping[str, bytes | None]) -> str:
    """What the AWS side's cached reads depend on: the spec's AWS parts and named files."""
    h = hashlib.sha256()
    h.update(spec.stack.encode())
    for part in (spec.aws, spec.workspace, spec.iam):
        h.update(b"\x1f" + (part.model_dump_json().encode() if part is not None else b"-"))
    for path, data in sorted(files.items()):
        h.update(b"\x1f" + path.encode() + b"\x1e" + (data if data is not None else b"-"))
    return h.hexdigest()
