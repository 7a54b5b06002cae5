"""One reconcile pass: load the spec, gather facts, run both sides, summarize.

Level-based and idempotent: a pass never asks why it was called; it reads everything
it needs each time. The AWS side goes first (it says where the workspace is), in its
worker so that it never holds the local side for long. Nothing a side raises ends the
pass: it becomes a Degraded condition with the message, retried after a backoff.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from ampd.aws.observe import read_spec_files
from ampd.core import Condition, ConditionStatus, Health, Kind, Plan, SideResult, SyncStatus
from ampd.engine.factfinder import FactFinder
from ampd.engine.facts import InstanceFacts
from ampd.engine.retry import RetryBook
from ampd.engine.side import Facts, OnePassSide as Side
from ampd.engine.status import PassSummary, merge_conditions
from ampd.engine.worker import AwsWorker, crashed
from ampd.errors import SpecError
from ampd.gateways import progress, statelock
from ampd.gateways.files import inputs_fingerprint
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Runtime
from ampd.gateways.store import Store, StoreView
from ampd.gateways.users import process_user
from ampd.local.observe import promconfig
from ampd.local.side.side import LocalSide, OwnWrites
from ampd.source.specfile import load_and_check, source_name, state_source_for
from ampd.spec.checks import non_loopback_listeners
from ampd.spec.load import LoadedSpec
from ampd.spec.models import StateSpec, duration_seconds

log = structlog.get_logger()

HEALTH_INTERVAL = 10.0  # health and remote-write evidence, while anything is not in line
IDLE_INTERVAL = 30.0  # the same, while everything is Synced and Healthy
AWS_PASS_TIMEOUT = 20.0  # below WatchdogSec: the pass waits this long at most for AWS
PASS_LOCK_WAIT = 20.0  # a one-shot ``ampd apply`` may hold the state directory this long


class Reconciler:
    lock_holder = "ampd run"  # what a process waiting for the state directory is told

    def __init__(
        self,
        state_path: Path,
        paths: Paths,
        runtime: Runtime,
        *,
        aws: Side | None = None,
        instance_facts: InstanceFacts | None = None,
        self_command: str = "/usr/bin/ampd",
        manage_processes: bool = True,
        read_only: bool = False,
    ) -> None:
        self.state_path = state_path
        self.paths = paths
        self.runtime = runtime
        # A plan gets a view that cannot write ampd.json (mypy keeps it so).
        self.store: StoreView = StoreView(paths.store) if read_only else Store(paths.store)
        self.book = RetryBook()
        self.own_writes = OwnWrites()
        self.finder = FactFinder(self.store, instance_facts)
        self.local = LocalSide(
            paths,
            runtime,
            self.store,
            self.book,
            state_path=state_path,
            self_command=self_command,
            manage_processes=manage_processes,
            own_writes=self.own_writes,
        )
        self.worker: AwsWorker | None = None
        if aws is not None:
            self.aws = aws
        self.loaded: LoadedSpec | None = None
        self.generation = 0
        self.spec_error: str | None = None
        self._inputs_key: str | None = None
        self.spec_files: dict[str, bytes | None] | None = None
        self.conditions: dict[str, Condition] = {}
        self.facts = Facts()
        self.errors: list[dict[str, object]] = []

    # ---- collaborators ----------------------------------------------------------------
    @property
    def aws(self) -> Side | None:
        return self.worker.side if self.worker is not None else None

    @aws.setter
    def aws(self, side: Side | None) -> None:
        on_done = self.worker.on_done if self.worker is not None else None
        if self.worker is not None:
            self.worker.close()
        self.worker = AwsWorker(side, on_done) if side is not None else None

    @property
    def on_aws_done(self) -> Callable[[], None] | None:
        return self.worker.on_done if self.worker is not None else None

    @on_aws_done.setter
    def on_aws_done(self, fn: Callable[[], None] | None) -> None:
        if self.worker is not None:
            self.worker.on_done = fn

    # ---- spec -------------------------------------------------------------------------
    def _inputs(self) -> list[Path]:
        """The state file and every file it names (as last loaded)."""
        out = [self.state_path]
        spec = self.loaded.spec if self.loaded is not None else None
        if spec is not None and spec.workspace is not None:
            out += [Path(g.file) for g in spec.workspace.rule_groups]
            if spec.workspace.alertmanager is not None:
                out.append(Path(spec.workspace.alertmanager.file))
        if spec is not None and spec.grafana is not None:
            out += [Path(d) for d in spec.grafana.dashboards]
            if spec.grafana.datasource.credentials_file:
                out.append(Path(spec.grafana.datasource.credentials_file))
        return out

    def load_spec(self) -> None:
        """Load and check the state file, unless neither it nor a file it names changed
        since the last time (no YAML, no ``promtool check rules`` on an idle pass)."""
        local = source_name(self.state_path) is None
        key = inputs_fingerprint(self._inputs()) if local else None
        if key is not None and key == self._inputs_key:
            return
        self._inputs_key = key
        try:
            loaded = load_and_check(self.state_path)
        except SpecError as e:
            self.spec_error = str(e)
            problems = [str(p) for p in e.problems]
            log.error("spec.invalid", file=str(self.state_path), problems=problems)
            return
        self.spec_error = None
        self.spec_files = read_spec_files(loaded.spec)  # as validated: what AWS may get
        if self.loaded is None or loaded.sha256 != self.loaded.sha256:
            self.generation += 1
            log.info("spec.loaded", file=str(self.state_path), generation=self.generation)
        self.loaded = loaded

    # ---- the pass ---------------------------------------------------------------------
    def run_pass(self, *, apply: bool = True, aws_timeout: float = AWS_PASS_TIMEOUT) -> PassSummary:
        """One pass. A pass that may write holds the state directory's lock (another
        ``ampd`` on the same directory waits: ampd.gateways.statelock)."""
        if not apply or not isinstance(self.store, Store):
            return self._run_pass(apply, aws_timeout)
        with statelock.hold(
            self.paths.state_dir,
            wait=PASS_LOCK_WAIT,
            who=self.lock_holder,
            on_wait=lambda who: log.info("state_lock.waiting", holder=who),
        ):
            progress.mark()  # a completed step: the wait is bounded below WatchdogSec / 2
            log.debug("state_lock.acquired")
            try:
                return self._run_pass(apply, aws_timeout)
            finally:
                log.debug("state_lock.released")

    def _run_pass(self, apply: bool, aws_timeout: float) -> PassSummary:
        started, t0 = time.time(), time.monotonic()
        rid = uuid.uuid4().hex[:12]
        structlog.contextvars.bind_contextvars(reconcile_id=rid)
        try:
            self.load_spec()
            results = self._sides(apply, aws_timeout) if self.loaded is not None else []
            return self._summary(rid, started, t0, results)
        finally:
            structlog.contextvars.unbind_contextvars("reconcile_id")

    def _sides(self, apply: bool, aws_timeout: float) -> list[SideResult]:
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
        if self.worker is not None and (spec.workspace is not None or spec.iam is not None):
            aws = self.worker.result(spec, facts, apply=apply, timeout=aws_timeout)
            progress.mark()
            facts = facts.with_workspace(aws.workspace)
            results.append(_healthy_unless_crashed("aws", aws))
        self.facts = facts
        try:
            local = self.local.reconcile(spec, facts, apply=apply)
        except Exception as e:
            log.error("local.pass.crashed", error=str(e), traceback=traceback.format_exc())
            local = replace(
                crashed("local", e), requeue_after=self.book.failed_temporarily("local")
            )
        else:
            self.book.succeeded("local")
            local = self._with_config_loaded(spec, local)
        results.append(_healthy_unless_crashed("local", local))
        return results

    def _with_config_loaded(self, spec: StateSpec, local: SideResult) -> SideResult:
        """A reload that failed after ampd's own check (a hand-sent SIGHUP, a file it
        names broken since) shows in Prometheus' metrics; the next pass reports it."""
        prom = spec.prometheus
        running = any(
            s.key.kind is Kind.PROCESS and s.key.name == "prometheus" and s.health is Health.HEALTHY
            for s in local.statuses
        )
        if prom is None or not prom.enabled or not self.local.manage_processes or not running:
            return local
        owner = process_user("prometheus", self.runtime.name).uid
        cond = promconfig.config_condition(prom.listen, owner=owner)
        return local if cond is None else replace(local, conditions=(*local.conditions, cond))

    def _summary(
        self, rid: str, started: float, t0: float, results: Sequence[SideResult]
    ) -> PassSummary:
        now = time.time()
        spec_ok = self.spec_error is None
        spec_cond = Condition(
            "SpecValid",
            ConditionStatus.TRUE if spec_ok else ConditionStatus.FALSE,
            "Valid" if spec_ok else "Invalid",
            "" if spec_ok else (self.spec_error or "").splitlines()[0],
        )
        conds = [spec_cond, *self.facts.conditions] + [c for r in results for c in r.conditions]
        source = state_source_for(self.state_path)  # ssm: or s3:// (None: a local file)
        if source is not None:
            conds += source.conditions()
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
        if source is not None:
            waits.append(source.next_poll_in())
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
            spec_file=source.name if source is not None else str(self.state_path),
            spec_generation=self.generation,
            spec_sha256=self.loaded.sha256 if self.loaded else None,
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
            next_pass_at=now + min(waits) if waits else None,
            runtime=self.runtime.name,
            errors=list(self.errors),
            unobserved=[u for r in results for u in r.unobserved],
            exposed=non_loopback_listeners(spec) if spec is not None else [],
        )

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def _in_line(results: Sequence[SideResult]) -> bool:
    """Everything Synced and Healthy, and no condition False or Unknown."""
    statuses = [s for r in results for s in r.statuses]
    conditions = [c for r in results for c in r.conditions]
    synced = all(s.sync is SyncStatus.SYNCED and s.health is Health.HEALTHY for s in statuses)
    return synced and all(c.status is ConditionStatus.TRUE for c in conditions)


def _healthy_unless_crashed(side: str, result: SideResult) -> SideResult:
    """Every side reports whether it ran to the end, so a crash clears once it passes."""
    name = f"{side.title()}SideHealthy"
    if result.condition(name) is not None:
        return result
    ok = Condition(name, ConditionStatus.TRUE, "Reconciled")
    return replace(result, conditions=(*result.conditions, ok))
