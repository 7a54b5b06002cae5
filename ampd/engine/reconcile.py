"""One reconcile pass: load the spec, gather facts, run both sides, summarize.

Level-based and idempotent: a pass never asks why it was called; it reads everything
it needs each time. The spec comes from a :class:`~ampd.engine.source.SpecSource` and
the sides are built outside (``ampd.wiring.reconciler``) and handed in; each runs its
observe, plan, apply and report (``ampd.engine.side.run_side``), applying only when the
pass holds writers. The AWS side goes first (it says where the workspace is), in its
worker so that it never holds the local side for long. Nothing a side raises ends the
pass: it becomes a Degraded condition with the message, retried after a backoff.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Generic, TypeVar

import structlog

from ampd.core import Condition, ConditionStatus, Health, Plan, SideResult, SyncStatus
from ampd.engine.factfinder import FactFinder
from ampd.engine.facts import Facts
from ampd.engine.retry import RetryBook
from ampd.engine.side import Side, run_side
from ampd.engine.source import SpecSource
from ampd.engine.status import PROBLEM_CONDITIONS, PassSummary, merge_conditions
from ampd.engine.worker import SideWorker, crashed
from ampd.errors import SpecError
from ampd.gateways import progress, statelock
from ampd.gateways.paths import Paths
from ampd.spec.checks import non_loopback_listeners
from ampd.spec.load import LoadedSpec
from ampd.spec.models import StateSpec, duration_seconds

log = structlog.get_logger()

HEALTH_INTERVAL = 10.0  # health and remote-write evidence, while anything is not in line
IDLE_INTERVAL = 30.0  # the same, while everything is Synced and Healthy
AWS_PASS_TIMEOUT = 20.0  # below WatchdogSec: the pass waits this long at most for AWS
PASS_LOCK_WAIT = 20.0  # a one-shot ``ampd apply`` may hold the state directory this long

W = TypeVar("W")  # the writers both sides take (ampd.wiring.Writers)


class Reconciler(Generic[W]):
    """The pass over both sides. ``writers`` None (``ampd plan``): nothing is applied and
    nothing is locked; with writers the pass holds the state directory's lock."""

    lock_holder = "ampd run"  # what a process waiting for the state directory is told

    def __init__(
        self,
        source: SpecSource,
        paths: Paths,
        *,
        local: Side[Any, Any, Any, W],
        aws: Side[Any, Any, Any, W] | None = None,
        ingest: Side[Any, Any, Any, W] | None = None,
        writers: W | None,
        finder: FactFinder,
        book: RetryBook,
        runtime_name: str,
    ) -> None:
        self.source = source
        self.paths = paths
        self.local = local
        self.aws = aws
        self.ingest = ingest
        self.writers = writers
        self.finder = finder
        self.book = book
        self.runtime_name = runtime_name
        self.worker = SideWorker() if aws is not None else None
        self.loaded: LoadedSpec | None = None
        self.generation = 0
        self.spec_error: str | None = None
        self.spec_files: Mapping[str, bytes | None] | None = None
        self.conditions: dict[str, Condition] = {}
        self.facts = Facts()
        self.errors: list[dict[str, object]] = []

    @property
    def on_aws_done(self) -> Callable[[], None] | None:
        return self.worker.on_done if self.worker is not None else None

    @on_aws_done.setter
    def on_aws_done(self, fn: Callable[[], None] | None) -> None:
        if self.worker is not None:
            self.worker.on_done = fn

    # ---- spec -------------------------------------------------------------------------
    def load_spec(self) -> None:
        """The source's current good spec (a file is checked again only when it or a file
        it names changed: no YAML, no ``promtool check rules`` on an idle pass)."""
        try:
            loaded = self.source.load()
        except SpecError as e:
            message = str(e)
            if message != self.spec_error:
                problems = [str(p) for p in e.problems]
                log.error("spec.invalid", file=self.source.name, problems=problems)
            self.spec_error = message
            return
        self.spec_error = None
        if loaded is self.loaded:
            return
        self.spec_files = self.source.pushed_files()  # as validated: what AWS may get
        if self.loaded is None or loaded.sha256 != self.loaded.sha256:
            self.generation += 1
            log.info("spec.loaded", file=self.source.name, generation=self.generation)
        self.loaded = loaded

    # ---- the pass ---------------------------------------------------------------------
    def run_pass(self, *, aws_timeout: float = AWS_PASS_TIMEOUT) -> PassSummary:
        """One pass. A pass with writers holds the state directory's lock (another
        ``ampd`` on the same directory waits: ampd.gateways.statelock); a plan has none."""
        if self.writers is None:
            return self._run_pass(aws_timeout)
        with statelock.hold(
            self.paths.state_dir,
            wait=PASS_LOCK_WAIT,
            who=self.lock_holder,
            on_wait=lambda who: log.info("state_lock.waiting", holder=who),
        ):
            progress.mark()  # a completed step: the wait is bounded below WatchdogSec / 2
            log.debug("state_lock.acquired")
            try:
                return self._run_pass(aws_timeout)
            finally:
                log.debug("state_lock.released")

    def _run_pass(self, aws_timeout: float) -> PassSummary:
        started, t0 = time.time(), time.monotonic()
        rid = uuid.uuid4().hex[:12]
        structlog.contextvars.bind_contextvars(reconcile_id=rid)
        try:
            self.load_spec()
            results = self._sides(aws_timeout) if self.loaded is not None else []
            return self._summary(rid, started, t0, results)
        finally:
            structlog.contextvars.unbind_contextvars("reconcile_id")

    def _run(self, side: Side[Any, Any, Any, W], spec: StateSpec, facts: Facts) -> SideResult:
        return run_side(side, spec, facts, self.writers)

    def _sides(self, aws_timeout: float) -> list[SideResult]:
        assert self.loaded is not None
        spec = self.loaded.spec
        try:
            facts = self.finder.gather(spec)
        except Exception as e:  # a broken probe must not stop the pass
            log.error("facts.failed", error=str(e), traceback=traceback.format_exc())
            facts = self.facts
        progress.mark()
        facts = replace(facts, spec_files=self.spec_files)
        results: list[SideResult] = []
        aws, worker = self.aws, self.worker
        if aws is not None and worker is not None and (spec.workspace or spec.iam):
            result = worker.result(lambda: self._run(aws, spec, facts), timeout=aws_timeout)
            progress.mark()
            facts = facts.with_workspace(result.workspace)
            results.append(_healthy_unless_crashed("aws", result))
        self.facts = facts
        try:
            local = self._run(self.local, spec, facts)
        except Exception as e:
            log.error("local.pass.crashed", error=str(e), traceback=traceback.format_exc())
            local = replace(
                crashed("local", e), requeue_after=self.book.failed_temporarily("local")
            )
        else:
            self.book.succeeded("local")
        results.append(_healthy_unless_crashed("local", local))
        if self.ingest is not None and spec.prometheus is not None:
            results.append(
                _healthy_unless_crashed("ingest", self._run_ingest(self.ingest, spec, facts))
            )
        return results

    def _run_ingest(
        self, side: Side[Any, Any, Any, W], spec: StateSpec, facts: Facts
    ) -> SideResult:
        """After the local side: the estimate of what this host sends, and its price."""
        try:
            result = self._run(side, spec, facts)
        except Exception as e:
            log.error("ingest.pass.crashed", error=str(e), traceback=traceback.format_exc())
            return replace(
                crashed("ingest", e), requeue_after=self.book.failed_temporarily("ingest")
            )
        self.book.succeeded("ingest")
        progress.mark()
        return result

    def _summary(
        self, rid: str, started: float, t0: float, results: Sequence[SideResult]
    ) -> PassSummary:
        # Long on purpose: one record built field by field from what the pass saw.
        now = time.time()
        spec_ok = self.spec_error is None
        spec_cond = Condition(
            "SpecValid",
            ConditionStatus.TRUE if spec_ok else ConditionStatus.FALSE,
            "Valid" if spec_ok else "Invalid",
            "" if spec_ok else (self.spec_error or "").splitlines()[0],
        )
        conds = [spec_cond, *self.facts.conditions] + [c for r in results for c in r.conditions]
        conds += self.source.conditions()  # a remote state's (none for a file)
        self.conditions = merge_conditions(self.conditions, conds, now)
        outcomes = [o for r in results for o in r.outcomes]
        for o in outcomes:
            if not o.ok:
                self.errors.append({"at": now, "key": str(o.change.key), "message": o.message})
        self.errors = self.errors[-10:]
        waits = [r.requeue_after for r in results if r.requeue_after is not None]
        if self.loaded is not None:
            resync = duration_seconds(self.loaded.spec.aws_or_default.resync)
            settled = self.spec_error is None and not outcomes and _in_line(results)
            waits.append(min(IDLE_INTERVAL if settled else HEALTH_INTERVAL, resync))
        poll = self.source.next_poll_in()
        if poll is not None:
            waits.append(poll)
        plan = Plan()
        for r in results:
            plan = plan + r.plan
        ws = self.facts.workspace
        spec = self.loaded.spec if self.loaded is not None else None
        return PassSummary(
            reconcile_id=rid,
            started_at=started,
            duration_s=time.monotonic() - t0,
            plan=plan,
            outcomes=outcomes,
            statuses=[s for r in results for s in r.statuses],
            conditions=dict(self.conditions),
            spec_file=self.source.name,
            spec_generation=self.generation,
            spec_sha256=self.loaded.sha256 if self.loaded else None,
            spec_version=self.source.version() if self.loaded else None,
            spec_last_look=self.source.last_look(),
            spec_error=self.spec_error,
            workspace=(
                {
                    "id": ws.id,
                    "region": ws.region,
                    "remote_write_url": ws.remote_write_url,
                    "query_url": ws.query_url,
                }
                if ws is not None and spec is not None and spec.workspace is not None
                else None
            ),
            targets=next((r.targets for r in results if r.targets is not None), None),
            ingest=next((r.ingest for r in results if r.ingest is not None), None),
            next_pass_at=now + min(waits) if waits else None,
            runtime=self.runtime_name,
            errors=list(self.errors),
            unobserved=[u for r in results for u in r.unobserved],
            exposed=non_loopback_listeners(spec) if spec is not None else [],
        )

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def _in_line(results: Sequence[SideResult]) -> bool:
    """Everything Synced and Healthy, and no condition False or Unknown (a condition
    named for a problem, such as IngestOverBudget, is in line when False)."""
    statuses = [s for r in results for s in r.statuses]
    conditions = [c for r in results for c in r.conditions]
    synced = all(s.sync is SyncStatus.SYNCED and s.health is Health.HEALTHY for s in statuses)
    good = [
        c.status
        is (ConditionStatus.FALSE if c.type in PROBLEM_CONDITIONS else ConditionStatus.TRUE)
        for c in conditions
    ]
    return synced and all(good)


def _healthy_unless_crashed(side: str, result: SideResult) -> SideResult:
    """Every side reports whether it ran to the end, so a crash clears once it passes."""
    name = f"{side.title()}SideHealthy"
    if result.condition(name) is not None:
        return result
    ok = Condition(name, ConditionStatus.TRUE, "Reconciled")
    return replace(result, conditions=(*result.conditions, ok))
