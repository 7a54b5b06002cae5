"""The local side: generated files and the processes that read them.

Render every file from the spec and the facts, compare with what is on disk and what
ampd last wrote, start/stop/restart/reload processes whose inputs changed, then read
health and remote-write evidence. With ``apply=False`` nothing is touched: no file, no
process, no ampd.json, no wipe of a baked instance's data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from ampd.core import (
    Change,
    Health,
    Kind,
    Outcome,
    Plan,
    ProcessState,
    ResourceKey,
    SideResult,
)
from ampd.engine.facts import Facts
from ampd.engine.retry import RetryBook
from ampd.gateways import promqueue, promtool
from ampd.gateways.files import read_bytes, sha256_bytes
from ampd.gateways.http import owned_get
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Runtime
from ampd.gateways.store import Store, StoredState, StoreView
from ampd.gateways.users import process_user, user_names
from ampd.local.act.apply import LocalTargets, apply_local, command_from_rendered, settle_restarted
from ampd.local.act.imds_fence import ImdsFence
from ampd.local.act.instance import FILE_PREFIX, check_instance
from ampd.local.observe import health as local_health
from ampd.local.observe import processes as observe_local
from ampd.local.plan import drain
from ampd.local.plan.changes import (
    PROCESS_INPUTS,
    DesiredFile,
    plan_files,
    plan_processes,
    unrecorded_files,
    with_label_diff,
)
from ampd.local.render.context import RenderContext
from ampd.local.render.effective import effective_spec, render_context
from ampd.local.render.files import Rendered, render_all
from ampd.local.render.imds import imds_needs
from ampd.local.report.flow import FlowTracker
from ampd.local.report.owners import listeners_condition
from ampd.local.report.statuses import LocalSnapshot, local_statuses
from ampd.spec.checks import proxy_enabled
from ampd.spec.models import StateSpec

log = structlog.get_logger()

PROGRESS_RECHECK = 0.5  # a pass follows this soon when something is still starting
DRAIN_TIMEOUT = 15.0  # longest wait for the remote-write queue before it is rebuilt


class OwnWrites:
    """The bytes ampd itself last wrote to each generated file, so that the watcher can
    tell ampd's own writes (no pass needed) from a hand edit (drift)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sha: dict[Path, str | None] = {}

    def note(self, path: Path, sha: str | None) -> None:
        with self._lock:
            self._sha[path] = sha

    def is_own(self, path: Path, current_sha: str | None) -> bool:
        with self._lock:
            return path in self._sha and self._sha[path] == current_sha


class LocalSide:
    def __init__(
        self,
        paths: Paths,
        runtime: Runtime,
        store: StoreView,
        book: RetryBook | None = None,
        *,
        state_path: Path | str,
        self_command: str = "/usr/bin/ampd",
        manage_processes: bool = True,
        own_writes: OwnWrites | None = None,
    ) -> None:
        self.paths = paths
        self.runtime = runtime
        self._store = store
        self._book = book or RetryBook()
        self.state_path = state_path
        self.self_command = self_command
        self.manage_processes = manage_processes
        self.own_writes = own_writes or OwnWrites()
        self.flow = FlowTracker()
        self.native_failed = False
        self.imds = ImdsFence()
        self.last_change: dict[ResourceKey, float] = {}

    def context(self, spec: StateSpec, facts: Facts) -> RenderContext:
        return render_context(
            spec,
            facts,
            source=self.state_path,
            state_dir=self.paths.state_dir,
            python=self.self_command,
            process_users=user_names(self.runtime.name),
        )

    def render(self, spec: StateSpec, facts: Facts) -> tuple[StateSpec, dict[str, Rendered]]:
        """The effective spec and every generated file, exactly as the daemon writes them."""
        return render_files(spec, self.context(spec, facts))

    def reconcile(self, spec: StateSpec, facts: Facts, *, apply: bool) -> SideResult:
        now = time.time()
        writer = self._store if apply and isinstance(self._store, Store) else None
        instance = (
            None
            if writer is None
            else check_instance(writer, self.runtime, self.paths, facts.instance_id)
        )
        if self.native_failed:
            facts = replace(facts, native_failed=True)
        ctx = self.context(spec, facts)
        spec, rendered = render_files(spec, ctx)
        stored = self._store.load()
        fplan, unrecorded = self._plan_files(spec, rendered, stored)
        commands = {
            r.name.removesuffix(".cmd.json"): command_from_rendered(r)
            for r in rendered.values()
            if r.name.endswith(".cmd.json")
        }
        observed: dict[str, ProcessState] = {}
        pplan, pwake = Plan(), None
        if self.manage_processes:
            names = sorted(set(commands) | set(PROCESS_INPUTS))
            observed = observe_local.observe_processes(self.runtime, names)
            pplan, pwake = plan_processes(
                commands, observed, fplan.changes, now=now, unrecorded=unrecorded
            )
        plan = fplan + pplan
        listens = _listens(spec) if self.manage_processes else {}
        targets = LocalTargets(
            rendered,
            self.paths.generated,
            self.runtime,
            commands,
            listens,
            promtool.find_promtool(spec.prometheus.binary if spec.prometheus else None),
        )
        fenced = (  # before any start/restart
            self.imds.apply(self.runtime, imds_needs(spec, ctx), listens)
            if writer is not None and listens
            else None
        )
        outcomes: list[Outcome] = []
        if writer is not None and plan.changes:
            self._drain_first(plan, targets, observed)
            outcomes = self._apply(plan, targets, writer, now)
            if self.manage_processes:
                observed = observe_local.observe_processes(self.runtime, sorted(observed))
        if writer is not None and self.manage_processes:
            settle_restarted(observed, listens, self.runtime, now)
        if writer is not None and unrecorded:
            self._record_unrecorded(unrecorded, rendered, outcomes, writer)
        external_proxy = spec.proxy is not None and spec.proxy.implementation != "builtin"
        owners = {name: process_user(name, self.runtime.name) for name in listens}
        squatted = observe_local.find_squatters(listens, owners)
        probes = {
            name: local_health.probe(
                name,
                listen,
                owners[name],
                squatted,
                tcp_only=external_proxy and name == "sigv4-proxy",
            )
            for name, listen in listens.items()
            if (st := observed.get(name)) is not None and st.running
        }
        snap = LocalSnapshot(
            files=sorted(rendered),
            plan=plan,
            outcomes=outcomes,
            applied=writer is not None,
            processes=observed,
            listens=listens,
            probes=probes,
            last_change=self.last_change,
            now=now,
        )
        statuses = local_statuses(snap)
        owned = listeners_condition(squatted, checked=bool(listens))
        conditions = [c for c in (instance, fenced, owned) if c is not None]
        flow, native_unsigned = local_health.remote_write_condition(
            self.flow, spec, ctx, listens, observed, external_proxy, owners, squatted
        )
        if native_unsigned and not self.native_failed:
            log.warning("remote_write.native_unsigned", detail=flow.message if flow else None)
            self.native_failed = True
        if flow is not None:
            conditions.append(flow)
        conditions += local_health.proxy_evidence(spec, probes, external_proxy, owners, squatted)
        hints = [pwake - now] if pwake is not None else []
        if any(s.health == Health.PROGRESSING for s in statuses):
            hints.append(PROGRESS_RECHECK)
        prom_up = spec.prometheus is not None and spec.prometheus.enabled and "prometheus" in probes
        return SideResult(
            plan=plan,
            outcomes=tuple(outcomes),
            statuses=tuple(statuses),
            conditions=tuple(conditions),
            requeue_after=RetryBook.requeue_after(outcomes, hints),
            targets=local_health.targets(listens["prometheus"], owners["prometheus"].uid)
            if prom_up
            else None,
        )

    # -- planning and acting ------------------------------------------------------------

    def _plan_files(
        self, spec: StateSpec, rendered: Mapping[str, Rendered], stored: StoredState
    ) -> tuple[Plan, tuple[str, ...]]:
        """The file changes, and the files a pass wrote without recording them."""
        names = set(rendered) | {
            k.removeprefix(FILE_PREFIX) for k in stored.applied if k.startswith(FILE_PREFIX)
        }
        on_disk = observe_local.observe_files(self.paths.generated, sorted(names))
        desired = [DesiredFile(r.name, r.sha256) for r in rendered.values()]
        plan = plan_files(
            desired,
            on_disk,
            stored.applied,
            correct_drift=spec.aws_or_default.drift == "correct",
        )
        prom = rendered.get("prometheus.yml")
        if any(c.key.name == "prometheus.yml" for c in (*plan.changes, *plan.drift)):
            live = read_bytes(self.paths.generated / "prometheus.yml")
            plan = with_label_diff(plan, live, prom.data if prom is not None else None)
        return plan, unrecorded_files(desired, on_disk, stored.applied)

    def _apply(self, plan: Plan, t: LocalTargets, writer: Store, now: float) -> list[Outcome]:
        """Act on the plan's changes, through the retry book: a file that failed for good
        on these exact bytes is not written again until its content changes."""
        todo, outcomes = [], []
        for change in plan.changes:
            reason = self._book.blocked(change.key, _fingerprint(change, t.rendered))
            if reason is not None:
                msg = f"not retried until its inputs change: {reason}"
                outcomes.append(Outcome(change, False, msg, permanent=True))
            else:
                todo.append(change)
        for change in todo:  # before the write: the watcher may see the rename at once
            if change.key.kind is Kind.FILE:
                r = t.rendered.get(change.key.name) if change.after is not None else None
                self.own_writes.note(t.generated / change.key.name, r.sha256 if r else None)
        held = [o.change.key.name for o in outcomes if o.change.key.kind is Kind.FILE]
        for done in apply_local(todo, t, held):
            outcomes.append(self._book_outcome(done, t.rendered, now))
        self._record_applied(outcomes, t.rendered, writer)
        return outcomes

    def _drain_first(
        self, plan: Plan, t: LocalTargets, observed: Mapping[str, ProcessState]
    ) -> None:
        """Before a reload that rebuilds Prometheus' remote-write queue (new workspace or
        external labels), or a restart/stop it cannot avoid, wait (bounded) until what the
        queue holds has been sent: the new queue starts reading the WAL from "now"."""
        st = observed.get("prometheus")
        if st is None or not st.running:
            return
        listen = _running_listen(st) or t.listens.get("prometheus")  # where it runs now
        if listen is None:
            return
        actions = [
            c.action for c in plan.changes if c.key == ResourceKey(Kind.PROCESS, "prometheus")
        ]
        new = t.rendered.get("prometheus.yml")
        running = read_bytes(self.paths.generated / "prometheus.yml")
        reason = drain.drain_reason(actions, running, new.data if new is not None else None)
        if reason is None:
            return
        owner = process_user("prometheus", self.runtime.name).uid  # no squatter's metrics
        drained = promqueue.wait_drained(listen, DRAIN_TIMEOUT, fetch=owned_get(owner, 2.0))
        if drained is not None:
            log_at = log.info if drained.drained else log.warning
            log_at(
                "remote_write.drain",
                drained=drained.drained,
                waited_s=round(drained.waited_s, 3),
                pending_at_end=drained.pending_at_end,
                reason=reason,
            )

    def _book_outcome(self, o: Outcome, rendered: Mapping[str, Rendered], now: float) -> Outcome:
        key = o.change.key
        if o.ok:
            self._book.succeeded(key)
            self.last_change[key] = now
            return o
        if o.permanent and key.kind is Kind.FILE:
            self._book.failed_permanently(key, _fingerprint(o.change, rendered), o.message)
            return o
        # temporary, or a process that may come back by itself (its binary restored)
        base = o.retry_after if o.retry_after is not None else 5.0
        return replace(o, retry_after=self._book.failed_temporarily(key, base))

    def _record_applied(
        self, outcomes: Sequence[Outcome], rendered: Mapping[str, Rendered], writer: Store
    ) -> None:
        done = [o.change for o in outcomes if o.ok and o.change.key.kind == Kind.FILE]
        if not done:
            return

        def upd(state: StoredState) -> None:
            for change in done:
                k = str(change.key)
                if change.key.name in rendered and change.after is not None:
                    state.applied[k] = rendered[change.key.name].sha256
                else:
                    state.applied.pop(k, None)

        writer.update(upd)

    def _record_unrecorded(
        self,
        names: Sequence[str],
        rendered: Mapping[str, Rendered],
        outcomes: Sequence[Outcome],
        writer: Store,
    ) -> None:
        """Complete ampd.json for files an unfinished pass wrote, once the processes that
        read them took them (a failed reload or restart leaves them for the next pass)."""
        failed = {
            o.change.key.name for o in outcomes if not o.ok and o.change.key.kind is Kind.PROCESS
        }
        done = [n for n in names if not any(n in PROCESS_INPUTS.get(p, {}) for p in failed)]
        if not done:
            return

        def upd(state: StoredState) -> None:
            for name in done:
                state.applied[FILE_PREFIX + name] = rendered[name].sha256

        writer.update(upd)


def render_files(spec: StateSpec, ctx: RenderContext) -> tuple[StateSpec, dict[str, Rendered]]:
    """The one way generated files are made: the daemon, ``plan`` and ``render`` use it."""
    eff = effective_spec(spec, ctx)
    return eff, {r.name: r for r in render_all(eff, ctx)}


def _fingerprint(change: Change, rendered: Mapping[str, Rendered]) -> str:
    key = change.key
    if key.kind is Kind.FILE and key.name in rendered:
        return rendered[key.name].sha256
    return sha256_bytes(f"{key}:{change.action.value}".encode())


def _running_listen(st: ProcessState) -> str | None:
    for arg in st.command.argv if st.command is not None else ():
        if arg.startswith("--web.listen-address="):
            return arg.partition("=")[2]
    return None


def _listens(spec: StateSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    if spec.prometheus is not None and spec.prometheus.enabled:
        out["prometheus"] = spec.prometheus.listen
    if spec.proxy is not None and proxy_enabled(spec):
        out["sigv4-proxy"] = spec.proxy.listen
    if spec.grafana is not None and spec.grafana.enabled:
        out["grafana"] = spec.grafana.listen
    return out
