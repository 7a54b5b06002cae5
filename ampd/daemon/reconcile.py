"""One reconcile pass: load the spec, observe, plan, act, report. Level-based and
idempotent: it never asks why it was called, it reads everything it needs each time."""

from __future__ import annotations

import concurrent.futures
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from ampd.act.aws import AwsResult
from ampd.act.local import apply_local, command_from_rendered
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
)
from ampd.errors import SpecError
from ampd.gateways import grafana, promtool
from ampd.gateways.files import remove_tree
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Runtime
from ampd.gateways.store import Store
from ampd.observe import local as observe_local
from ampd.observe.specfile import load_and_check
from ampd.plan.local import PROCESS_INPUTS, DesiredFile, plan_files, plan_processes
from ampd.render.context import RenderContext, WorkspaceFacts
from ampd.render.files import Rendered, render_all, signing_mode
from ampd.report.flow import FlowTracker
from ampd.report.status import PassSummary, merge_conditions
from ampd.spec.checks import proxy_enabled
from ampd.spec.load import LoadedSpec
from ampd.spec.models import ProxySpec, StateSpec, duration_seconds

log = structlog.get_logger()

# Prometheus releases before this send remote_write without a signature when sigv4 is set.
NATIVE_SIGV4_MIN = (2, 50, 0)
STARTUP_GRACE = 30.0  # seconds a just-started process may take to become ready
HEALTH_INTERVAL = 10.0  # local health and remote-write evidence are re-read this often
PROGRESS_RECHECK = 0.5  # a pass follows this soon when something is still starting
AWS_PASS_TIMEOUT = 20.0  # well inside WatchdogSec: a pass must stay short


class AwsSide(Protocol):
    """What the pass needs of the AWS side (ampd.act.aws.AwsReconciler)."""

    def reconcile(self, spec: StateSpec, *, apply: bool) -> AwsResult: ...


@dataclass
class Facts:
    """What the pass learned outside the spec, kept between passes."""

    workspace: WorkspaceFacts | None = None
    instance_labels: dict[str, str] = field(default_factory=dict)
    instance_checked: bool = False
    prometheus_version: tuple[int, int, int] | None = None
    prometheus_binary: str | None = None
    native_failed: bool = False


class Reconciler:
    def __init__(
        self,
        state_path: Path,
        paths: Paths,
        runtime: Runtime,
        *,
        aws: AwsSide | None = None,
        instance_facts: Callable[[], Mapping[str, str] | None] | None = None,
        self_command: str = "/usr/bin/ampd",
        manage_processes: bool = True,
    ) -> None:
        self.manage_processes = manage_processes
        self._tcp_probed: set[str] = set()  # processes without a health URL
        self.state_path = state_path
        self.paths = paths
        self.runtime = runtime
        self.aws = aws
        self.instance_facts = instance_facts
        self.self_command = self_command
        self.store = Store(paths.store)
        self.loaded: LoadedSpec | None = None
        self.generation = 0
        self.spec_error: str | None = None
        self.conditions: dict[str, Condition] = {}
        self.facts = Facts()
        self.flow = FlowTracker()
        self.last_change: dict[ResourceKey, float] = {}
        self.errors: list[dict[str, Any]] = []
        self._aws_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="aws")
        self._aws_future: concurrent.futures.Future[AwsResult] | None = None
        self._aws_consumed = True
        self._aws_waiting = False
        self.on_aws_done: Callable[[], None] | None = None  # the daemon queues a pass
        self._restore_workspace()

    # ---- spec -------------------------------------------------------------------------
    def load_spec(self) -> None:
        try:
            loaded = load_and_check(self.state_path)
        except SpecError as e:
            self.spec_error = str(e)
            log.error(
                "spec.invalid", file=str(self.state_path), problems=[str(p) for p in e.problems]
            )
            return
        self.spec_error = None
        if self.loaded is None or loaded.sha256 != self.loaded.sha256:
            self.generation += 1
            log.info("spec.loaded", file=str(self.state_path), generation=self.generation)
        self.loaded = loaded

    # ---- facts ------------------------------------------------------------------------
    def _restore_workspace(self) -> None:
        ws = self.store.load().extra.get("workspace")
        if isinstance(ws, dict) and ws.get("id"):
            self.facts.workspace = WorkspaceFacts(
                ws["id"], ws["region"], ws["remote_write_url"], ws["query_url"], ws.get("arn")
            )

    def _remember_workspace(self, ws: WorkspaceFacts) -> None:
        if ws == self.facts.workspace:
            return
        self.facts.workspace = ws
        data = {
            "id": ws.id,
            "region": ws.region,
            "remote_write_url": ws.remote_write_url,
            "query_url": ws.query_url,
            "arn": ws.arn,
        }
        self.store.update(lambda s: s.extra.__setitem__("workspace", data))

    def _instance_labels(self) -> dict[str, str]:
        if not self.facts.instance_checked and self.instance_facts is not None:
            self.facts.instance_checked = True
            found = self.instance_facts()
            self.facts.instance_labels = dict(found or {})
            self._check_instance(self.facts.instance_labels.get("instance_id"))
        return self.facts.instance_labels

    def _check_instance(self, instance_id: str | None) -> None:
        """An instance started from a baked image drops the state of the one that baked it:
        last-applied hashes of local files and Prometheus' WAL/TSDB (its samples carry the
        other instance's labels). Workspace id and clientToken are fleet-wide and stay."""
        if instance_id is None:
            return
        previous = self.store.load().instance_id
        if previous == instance_id:
            return
        if previous is not None:
            log.warning("instance.changed", previous=previous, current=instance_id)
            remove_tree(self.paths.state_dir / "data")

        def upd(state: Any) -> None:
            if previous is not None:
                state.applied = {
                    k: v
                    for k, v in state.applied.items()
                    if not k.startswith(Kind.FILE.value + "/")
                }
            state.instance_id = instance_id

        self.store.update(upd)

    def _prometheus_can_sign(self, spec: StateSpec) -> bool:
        prom = spec.prometheus
        if prom is None or self.facts.native_failed:
            return False
        if self.facts.prometheus_binary != prom.binary:
            self.facts.prometheus_binary = prom.binary
            self.facts.prometheus_version = promtool.binary_version(prom.binary)
        v = self.facts.prometheus_version
        return v is not None and v >= NATIVE_SIGV4_MIN

    def effective_spec(self, spec: StateSpec, ctx: RenderContext) -> StateSpec:
        """Resolve ``signing: auto`` against the proxy: a Prometheus that cannot sign brings
        the proxy even without a proxy section (with its defaults); one that signs natively
        leaves an ``enabled: auto`` proxy off unless Grafana goes through it."""
        mode = signing_mode(spec, ctx)
        if spec.proxy is None and mode == "proxy" and spec.workspace is not None:
            return spec.model_copy(update={"proxy": ProxySpec()})
        grafana_via_proxy = (
            spec.grafana is not None
            and spec.grafana.enabled
            and spec.grafana.datasource.via == "proxy"
        )
        if (
            spec.proxy is not None
            and spec.proxy.enabled == "auto"
            and mode == "native"
            and not grafana_via_proxy
        ):
            return spec.model_copy(
                update={"proxy": spec.proxy.model_copy(update={"enabled": False})}
            )
        return spec

    # ---- AWS --------------------------------------------------------------------------
    def _aws_pass(
        self, spec: StateSpec, apply: bool, timeout: float
    ) -> tuple[AwsResult | None, list[Condition]]:
        """The AWS side's result, never blocking the local side for more than ``timeout``.

        A slow AWS pass goes on in its worker; the local side runs with the last known
        workspace, and the result is used by the next pass (``on_aws_done`` queues one).
        """
        if self.aws is None or (spec.workspace is None and spec.iam is None):
            return None, []
        fut = self._aws_future
        if fut is not None and fut.done() and not self._aws_consumed:
            self._aws_consumed = True  # a slow pass finished in the background
            return self._aws_outcome(fut), []
        if fut is None or fut.done():
            fut = self._aws_future = self._aws_pool.submit(self.aws.reconcile, spec, apply=apply)
            self._aws_consumed = False
            fut.add_done_callback(self._aws_finished)
        self._aws_waiting = True
        try:
            result = fut.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            self._aws_waiting = False
            log.warning("aws.pass.slow", waited_s=timeout)
            return None, [
                Condition(
                    "AwsReachable",
                    ConditionStatus.UNKNOWN,
                    "Slow",
                    f"the AWS pass is taking longer than {timeout:.0f}s; still running",
                )
            ]
        except Exception:  # a bug in one side must not stop the other
            self._aws_waiting = False
            self._aws_consumed = True
            return self._aws_outcome(fut), []
        self._aws_waiting = False
        self._aws_consumed = True
        return result, []

    def _aws_finished(self, _fut: concurrent.futures.Future[AwsResult]) -> None:
        # only a pass nobody waited for needs a new pass to pick its result up
        if not self._aws_waiting and self.on_aws_done is not None:
            self.on_aws_done()

    def _aws_outcome(self, fut: concurrent.futures.Future[AwsResult]) -> AwsResult | None:
        try:
            return fut.result(timeout=0)
        except Exception as e:
            log.exception("aws.pass.crashed", error=str(e))
            return None

    # ---- the pass ---------------------------------------------------------------------
    def run_pass(self, *, apply: bool = True, aws_timeout: float = AWS_PASS_TIMEOUT) -> PassSummary:
        started = time.time()
        t0 = time.monotonic()
        rid = uuid.uuid4().hex[:12]
        structlog.contextvars.bind_contextvars(reconcile_id=rid)
        try:
            return self._pass(rid, started, t0, apply, aws_timeout)
        finally:
            structlog.contextvars.unbind_contextvars("reconcile_id")

    def _pass(  # noqa: PLR0915 - the pass reads top to bottom: spec, AWS, files, processes
        self, rid: str, started: float, t0: float, apply: bool, aws_timeout: float
    ) -> PassSummary:
        self.load_spec()
        now = time.time()
        conds: list[Condition] = [
            Condition(
                "SpecValid",
                ConditionStatus.FALSE if self.spec_error else ConditionStatus.TRUE,
                "Invalid" if self.spec_error else "Valid",
                (self.spec_error or "").splitlines()[0] if self.spec_error else "",
            )
        ]
        plan = Plan()
        outcomes: list[Outcome] = []
        statuses: list[ResourceStatus] = []
        wake: float | None = None
        targets: int | None = None
        if self.loaded is None:
            return self._summary(rid, started, t0, plan, outcomes, statuses, conds, None, wake)
        spec = self.loaded.spec

        # AWS first: it tells the local side where the workspace is.
        aws_result, aws_conds = self._aws_pass(spec, apply, aws_timeout)
        conds += aws_conds
        if aws_result is not None:
            plan = plan + aws_result.plan
            outcomes += list(aws_result.outcomes)
            statuses += list(aws_result.statuses)
            conds += list(aws_result.conditions)
            if aws_result.workspace is not None:
                w = aws_result.workspace
                self._remember_workspace(
                    WorkspaceFacts(w.id, w.region, w.remote_write_url, w.query_url, w.arn)
                )
            if aws_result.retry_after is not None:
                wake = now + aws_result.retry_after

        # Local side.
        ctx = RenderContext(
            source=str(self.state_path),
            state_dir=str(self.paths.state_dir),
            workspace=self.facts.workspace if spec.workspace is not None else None,
            instance_labels=self._instance_labels(),
            prometheus_can_sign=self._prometheus_can_sign(spec),
            grafana_major=grafana.grafana_major(spec.grafana.binary) if spec.grafana else None,
            python=self.self_command,
        )
        spec = self.effective_spec(spec, ctx)
        rendered = {r.name: r for r in render_all(spec, ctx)}
        generated = self.paths.generated
        stored = self.store.load()
        file_keys = set(rendered) | {
            k.partition("/")[2] for k in stored.applied if k.startswith(Kind.FILE.value + "/")
        }
        on_disk = observe_local.observe_files(generated, sorted(file_keys))
        correct = spec.aws_or_default.drift == "correct"
        fplan = plan_files(
            [DesiredFile(r.name, r.sha256) for r in rendered.values()],
            on_disk,
            stored.applied,
            correct_drift=correct,
        )
        commands = {
            r.name.removesuffix(".cmd.json"): command_from_rendered(r)
            for r in rendered.values()
            if r.name.endswith(".cmd.json")
        }
        if self.manage_processes:
            observed = observe_local.observe_processes(
                self.runtime, sorted(set(commands) | set(PROCESS_INPUTS))
            )
            pplan, pwake = plan_processes(commands, observed, fplan.changes, now=now)
        else:
            observed, pplan, pwake = {}, Plan(), None
        if pwake is not None:
            wake = pwake if wake is None else min(wake, pwake)
        local_plan = fplan + pplan
        plan = plan + local_plan
        listens = self._listens(spec) if self.manage_processes else {}
        external_proxy = spec.proxy is not None and spec.proxy.implementation != "builtin"
        self._tcp_probed = {"sigv4-proxy"} if external_proxy else set()
        if apply and local_plan.changes:
            local_outcomes = apply_local(
                local_plan.changes,
                rendered,
                generated,
                self.runtime,
                commands,
                listens,
                promtool.find_promtool(spec.prometheus.binary if spec.prometheus else None),
            )
            outcomes += local_outcomes
            self._record_applied(local_outcomes, rendered)
            if self.manage_processes:
                observed = observe_local.observe_processes(self.runtime, sorted(observed))
            for o in local_outcomes:
                if o.ok:
                    self.last_change[o.change.key] = now
                elif o.retry_after is not None:
                    w2 = now + o.retry_after
                    wake = w2 if wake is None else min(wake, w2)
        statuses += self._local_statuses(rendered, local_plan, outcomes, observed, listens, apply)
        prom_flow = self._remote_write_condition(spec, ctx, listens, observed)
        if prom_flow is not None:
            conds.append(prom_flow)
        if (
            spec.prometheus is not None
            and spec.prometheus.enabled
            and observed.get("prometheus", None)
        ):
            targets = self._targets(listens.get("prometheus"))
        return self._summary(rid, started, t0, plan, outcomes, statuses, conds, targets, wake)

    def _listens(self, spec: StateSpec) -> dict[str, str]:
        out: dict[str, str] = {}
        if spec.prometheus is not None and spec.prometheus.enabled:
            out["prometheus"] = spec.prometheus.listen
        if spec.proxy is not None and proxy_enabled(spec):
            out["sigv4-proxy"] = spec.proxy.listen
        if spec.grafana is not None and spec.grafana.enabled:
            out["grafana"] = spec.grafana.listen
        return out

    def _record_applied(self, outcomes: list[Outcome], rendered: Mapping[str, Rendered]) -> None:
        done = [o.change for o in outcomes if o.ok and o.change.key.kind == Kind.FILE]
        if not done:
            return

        def upd(state: Any) -> None:
            for change in done:
                k = str(change.key)
                if change.key.name in rendered and change.after is not None:
                    state.applied[k] = rendered[change.key.name].sha256
                else:
                    state.applied.pop(k, None)

        self.store.update(upd)

    def _local_statuses(
        self,
        rendered: Mapping[str, Rendered],
        plan: Plan,
        outcomes: list[Outcome],
        observed: Mapping[str, Any],
        listens: Mapping[str, str],
        applied: bool,
    ) -> list[ResourceStatus]:
        failed = {o.change.key: o.message for o in outcomes if not o.ok}
        pending = {c.key for c in plan.changes} if not applied else set()
        drift_only = {c.key for c in plan.drift} - {c.key for c in plan.changes}
        out: list[ResourceStatus] = []
        for name in sorted(rendered):
            key = ResourceKey(Kind.FILE, name)
            if key in failed:
                out.append(
                    ResourceStatus(
                        key,
                        SyncStatus.OUT_OF_SYNC,
                        Health.DEGRADED,
                        failed[key],
                        self.last_change.get(key),
                    )
                )
            elif key in pending or key in drift_only:
                msg = "drift reported, not corrected" if key in drift_only else "change pending"
                out.append(
                    ResourceStatus(
                        key, SyncStatus.OUT_OF_SYNC, Health.HEALTHY, msg, self.last_change.get(key)
                    )
                )
            else:
                out.append(
                    ResourceStatus(
                        key, SyncStatus.SYNCED, Health.HEALTHY, "", self.last_change.get(key)
                    )
                )
        for name, listen in sorted(listens.items()):
            key = ResourceKey(Kind.PROCESS, name)
            st = observed.get(name)
            sync = SyncStatus.OUT_OF_SYNC if key in failed or key in pending else SyncStatus.SYNCED
            if st is None or not st.running:
                if st is not None and st.crash_looping:
                    tail = " | ".join(st.last_stderr[-3:])
                    out.append(
                        ResourceStatus(
                            key,
                            SyncStatus.OUT_OF_SYNC,
                            Health.DEGRADED,
                            f"crash-looping (exit {st.last_exit}): {tail}",
                            self.last_change.get(key),
                        )
                    )
                else:
                    msg = failed.get(key) or (
                        "not running"
                        if st is None or st.last_exit is None
                        else f"exited with {st.last_exit}"
                    )
                    out.append(
                        ResourceStatus(
                            key,
                            SyncStatus.OUT_OF_SYNC,
                            Health.MISSING,
                            msg,
                            self.last_change.get(key),
                        )
                    )
                continue
            probe = observe_local.probe_health(name, listen, tcp_only=name in self._tcp_probed)
            if probe.ok:
                health, msg = Health.HEALTHY, f"pid {st.pid}"
            elif st.started_at is not None and time.time() - st.started_at < STARTUP_GRACE:
                health, msg = Health.PROGRESSING, f"starting: {probe.detail}"
            else:
                health, msg = Health.DEGRADED, probe.detail
            out.append(
                ResourceStatus(
                    key,
                    sync,
                    health,
                    failed.get(key, msg),
                    self.last_change.get(key),
                    {"pid": st.pid},
                )
            )
        return out

    def _remote_write_condition(
        self,
        spec: StateSpec,
        ctx: RenderContext,
        listens: Mapping[str, str],
        observed: Mapping[str, Any],
    ) -> Condition | None:
        prom = spec.prometheus
        if prom is None or not prom.enabled or prom.remote_write is None:
            return None
        if ctx.workspace is None:
            return Condition(
                "RemoteWriteFlowing",
                ConditionStatus.UNKNOWN,
                "NoWorkspace",
                "the workspace is not known yet",
            )
        st = observed.get("prometheus")
        if st is None or not st.running:
            return Condition(
                "RemoteWriteFlowing",
                ConditionStatus.FALSE,
                "PrometheusDown",
                "Prometheus is not running",
            )
        text = observe_local.scrape(listens["prometheus"])
        builtin_proxy = "sigv4-proxy" in listens and "sigv4-proxy" not in self._tcp_probed
        # (an external aws-sigv4-proxy would sign and forward a /metrics request upstream)
        proxy_text = observe_local.scrape(listens["sigv4-proxy"]) if builtin_proxy else None
        verdict = self.flow.observe(
            text, proxy_text, signing=signing_mode(spec, ctx), now=time.monotonic()
        )
        if verdict.native_unsigned and not self.facts.native_failed:
            log.warning("remote_write.native_unsigned", detail=verdict.message)
            self.facts.native_failed = True
        return Condition("RemoteWriteFlowing", verdict.status, verdict.reason, verdict.message)

    def _targets(self, listen: str | None) -> int | None:
        if listen is None:
            return None
        text = observe_local.scrape(listen, "/api/v1/targets?state=active")
        if text is None:
            return None
        return text.count('"scrapeUrl"')

    def _summary(
        self,
        rid: str,
        started: float,
        t0: float,
        plan: Plan,
        outcomes: list[Outcome],
        statuses: list[ResourceStatus],
        conds: list[Condition],
        targets: int | None,
        wake: float | None,
    ) -> PassSummary:
        now = time.time()
        self.conditions = merge_conditions(self.conditions, conds, now)
        for o in outcomes:
            if not o.ok:
                self.errors.append({"at": now, "key": str(o.change.key), "message": o.message})
        self.errors = self.errors[-10:]
        resync = None
        if self.loaded is not None:
            resync = now + min(
                HEALTH_INTERVAL, duration_seconds(self.loaded.spec.aws_or_default.resync)
            )
        if any(s.health == Health.PROGRESSING for s in statuses):
            wake = now + PROGRESS_RECHECK if wake is None else min(wake, now + PROGRESS_RECHECK)
        next_at = min(x for x in (wake, resync) if x is not None) if (wake or resync) else None
        ws = self.facts.workspace
        return PassSummary(
            reconcile_id=rid,
            started_at=started,
            duration_s=time.monotonic() - t0,
            plan=plan,
            outcomes=outcomes,
            statuses=statuses,
            conditions=dict(self.conditions),
            spec_file=str(self.state_path),
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
                if ws is not None and self.loaded is not None and self.loaded.spec.workspace
                else None
            ),
            targets=targets,
            next_pass_at=next_at,
            runtime=self.runtime.name,
            errors=list(self.errors),
        )

    def close(self) -> None:
        self._aws_pool.shutdown(wait=False, cancel_futures=True)


def pid() -> int:
    return os.getpid()
