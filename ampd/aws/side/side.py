"""The AWS side: the workspace, its children and IAM, in four phases.

::

    observe  region, identity, ampd.json, the workspace, its children and IAM: reads only
    plan     wave 1 the workspace, wave 2 its children and IAM: pure
    apply    wave 1 then wave 2 through the retry book, with the writers it is handed;
             ampd.json is written here only; reads back what it wrote
    report   statuses, conditions, requeue, the workspace record: pure

Every failure becomes an :class:`~ampd.core.Outcome`; one failing resource never stops
unrelated ones. A network failure ends the pass at once (``AwsReachable=False``) and the
last known workspace is still reported, so the local pipeline keeps running. When to try
again is the retry book's to say. Between passes the side keeps only its memory: the
observed cache, the sessions, the retry book and the role check's schedule.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from ampd.aws.act.rolecheck import DEFERRED_BY, RoleCheckSchedule
from ampd.aws.gateway.client import AwsUnreachable
from ampd.aws.gateway.client import configured_region as _configured_region
from ampd.aws.model import Live, Unreadable, workspace_key
from ampd.aws.observe import ObservedCache, read_spec_files
from ampd.aws.side.applying import Applier
from ampd.aws.side.observing import (
    REACHABILITY,
    observe_children,
    observe_workspace,
    read_retries,
    unreachable_delay,
)
from ampd.aws.side.planning import plan_pass
from ampd.aws.side.reporting import WORKSPACE_POLL, report_pass
from ampd.aws.side.runner import spec_fingerprint
from ampd.aws.side.sessions import GatewayFactory, Sessions
from ampd.aws.side.values import AwsDone, AwsPlan, AwsSeen
from ampd.aws.side.writers import AwsWriters
from ampd.core import ResourceKey, SideResult
from ampd.engine.facts import Facts
from ampd.engine.retry import RetryBook
from ampd.errors import AmpdError, PermanentError
from ampd.gateways import imds
from ampd.gateways.store import StoreView
from ampd.spec.models import StateSpec, duration_seconds

__all__ = ["WORKSPACE_POLL", "AwsSide", "GatewayFactory", "default_region"]

log = structlog.get_logger()


def default_region() -> str | None:
    """Region for ``aws.region: auto``: instance metadata first, then botocore's config."""
    return imds.region() or _configured_region()


class AwsSide:
    """``ampd.engine.side.Side[AwsSeen, AwsPlan, AwsDone, AwsWriters]``. Synchronous (the
    daemon runs it in a worker thread); one phase at a time."""

    name = "aws"

    def __init__(
        self,
        gateway_factory: GatewayFactory,
        store: StoreView,
        book: RetryBook | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        region_resolver: Callable[[], str | None] = default_region,
        wall_clock: Callable[[], float] = time.time,
        role_check_delay: float = DEFERRED_BY,
    ) -> None:
        self._store = store
        self._book = book or RetryBook()
        self._clock = clock
        self._wall = wall_clock
        self._region_resolver = region_resolver
        self._auto_region: str | None = None
        self._sessions = Sessions(gateway_factory)
        self._cache = ObservedCache()
        role_check = RoleCheckSchedule(clock, role_check_delay)
        self._applier = Applier(self._book, self._cache, self._sessions, role_check)
        self._forget = False
        self._lock = threading.RLock()

    @property
    def store(self) -> StoreView:
        """ampd.json, for reading (apply writes it through the writers it is handed)."""
        return self._store

    def forget_reads(self) -> None:
        """The next observe reads everything again (and forgets what failed for good)."""
        with self._lock:
            self._forget = True

    # -- the four phases ------------------------------------------------------------------

    def observe(self, spec: StateSpec, facts: Facts) -> AwsSeen:
        seen = AwsSeen(spec, self._store.load(), wall=self._wall(), started=self._clock())
        if spec.workspace is None and spec.iam is None:
            return seen
        with self._lock:
            return self._observe(seen, facts)

    def plan(self, spec: StateSpec, facts: Facts, seen: AwsSeen) -> AwsPlan:
        return plan_pass(spec, seen)

    def apply(self, plan: AwsPlan, seen: AwsSeen, writers: AwsWriters) -> AwsDone:
        with self._lock:
            done = self._applier.apply(plan, seen, writers)
        log.debug(
            "aws.pass",
            changes=plan.changes,
            drift=len(plan.plan.drift),
            failed=sum(1 for o in done.outcomes if not o.ok),
            workspace=str(done.workspace.details["id"]) if done.workspace else None,
            duration_ms=round((self._clock() - seen.started) * 1000, 1),
        )
        return done

    def report(
        self, spec: StateSpec, facts: Facts, seen: AwsSeen, plan: AwsPlan, done: AwsDone | None
    ) -> SideResult:
        return report_pass(seen, plan, done)

    # -- observe ----------------------------------------------------------------------------

    def _region(self, spec: StateSpec, facts: Facts) -> str | None:
        region = spec.aws_or_default.region
        if region != "auto":
            return region
        if facts.instance_labels.get("region"):
            return facts.instance_labels["region"]
        if self._auto_region is None:
            self._auto_region = self._region_resolver()
        return self._auto_region

    def _observe(self, seen: AwsSeen, facts: Facts) -> AwsSeen:
        spec, aws = seen.spec, seen.spec.aws_or_default
        region = self._region(spec, facts)
        if region is None:
            err = PermanentError(
                "aws.region is auto but there is no instance metadata and no AWS_REGION: "
                "set aws.region"
            )
            return replace(seen, failure=err, retry_after=unreachable_delay(self._book, err))
        files = dict(facts.spec_files) if facts.spec_files is not None else read_spec_files(spec)
        seen = replace(seen, region=region, files=files)
        self._expire(spec, files, forget=self._forget)
        self._forget = False
        try:
            reader = self._sessions.reader(region, aws.endpoint_url)
            identity = self._sessions.identity(reader, region, spec, facts)
        except AmpdError as e:
            self._sessions.forget_credentials(region, aws.endpoint_url, e)
            return replace(seen, failure=e, retry_after=unreachable_delay(self._book, e))
        seen = replace(seen, reader=reader, identity=identity)
        try:
            ws = observe_workspace(reader, spec, seen.stored, self._cache)
            lookup = ws.lookup
            live = lookup.live if lookup is not None and isinstance(lookup.live, Live) else None
            children = observe_children(
                reader, spec, region, identity, live, files, seen.stored.applied, self._cache
            )
        except AwsUnreachable as e:
            self._cache.clear()
            self._sessions.forget_credentials(region, aws.endpoint_url, e)
            return replace(seen, failure=e, retry_after=unreachable_delay(self._book, e))
        self._book.succeeded(REACHABILITY)
        observed: dict[ResourceKey, Live | Unreadable | None] = dict(children.observed)
        if lookup is not None:
            observed[workspace_key(spec)] = lookup.live
        retries = read_retries(self._book, observed)
        return replace(seen, workspace=ws, children=children, read_retries=retries)

    def _expire(self, spec: StateSpec, files: dict[str, bytes | None], *, forget: bool) -> None:
        """The cached reads are dropped when they expire (``aws.resync``), when the spec's
        AWS parts change, or when asked (:meth:`forget_reads`)."""
        fp = spec_fingerprint(spec, files)
        now = self._clock()
        taken = self._cache.taken_at
        expired = taken is None or now - taken >= duration_seconds(spec.aws_or_default.resync)
        if forget or expired or self._cache.fingerprint != fp:
            self._cache.clear()
            self._cache.fingerprint = fp
            self._cache.taken_at = now
        if forget:
            self._book.forget_permanent()
