"""Carry out one local plan, through the writers handed in, and read back what is true.

In order: the instance check (a host started from another one's image drops that one's
state first), the IMDS fence (before any start or restart), the drain wait the plan
decided, the file and process changes (ampd.local.act.apply; through the retry book: a
file that failed for good on these exact bytes is not written again until its content
changes), ampd.json's record, and a wait for a Prometheus its unit restarted. Then the
processes are read and probed again (unless the pass changed and waited for nothing), so
that the report says what is true after acting.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from ampd.core import Change, Condition, ConditionStatus, Kind, Outcome, Plan, ResourceKey
from ampd.engine.retry import RetryBook
from ampd.gateways import promqueue
from ampd.gateways.files import FileWriter, sha256_bytes
from ampd.gateways.http import owned_get
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import ProcessControl
from ampd.gateways.store import Store, StoredState
from ampd.gateways.users import process_user
from ampd.local.act.apply import LocalTargets, apply_local, settle_restarted
from ampd.local.act.imds_fence import ImdsFence
from ampd.local.act.instance import check_instance
from ampd.local.observe import processes as observe_local
from ampd.local.observe.seen import probe_processes
from ampd.local.plan.changes import PROCESS_INPUTS
from ampd.local.plan.local import FILE_PREFIX, Drain, LocalPlan
from ampd.local.plan.values import LocalDone, LocalSeen
from ampd.local.render.encoding import Rendered

__all__ = ["DRAIN_TIMEOUT", "LocalActor", "OwnWrites"]

log = structlog.get_logger()

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


class LocalActor:
    """Applies local plans; remembers what passes need from one another: the retry book,
    ampd's own writes, the IMDS fence as set, when each resource last changed."""

    def __init__(
        self, paths: Paths, book: RetryBook, own_writes: OwnWrites, *, manage_processes: bool
    ) -> None:
        self.paths = paths
        self.book = book
        self.own_writes = own_writes
        self.manage_processes = manage_processes
        self.fence = ImdsFence()
        self.last_change: dict[ResourceKey, float] = {}

    def apply(
        self,
        plan: LocalPlan,
        seen: LocalSeen,
        *,
        store: Store,
        processes: ProcessControl,
        files: FileWriter,
    ) -> LocalDone:
        conditions: list[Condition] = []
        if plan.new_instance:
            instance = check_instance(store, processes, files, self.paths, plan.instance_id)
            if instance is not None:
                conditions.append(instance)
            if instance is not None and instance.status is ConditionStatus.FALSE:
                # the plan is for a host without the old instance's data: it waits for that
                return self._read_back((), conditions, plan, seen, processes)
        if plan.listens:  # before any start/restart
            fenced = self.fence.apply(processes, plan.imds, plan.listens)
            if fenced is not None:
                conditions.append(fenced)
        targets = LocalTargets(
            plan.rendered,
            self.paths.generated,
            processes,
            plan.commands,
            plan.listens,
            seen.promtool,
            files,
        )
        outcomes: list[Outcome] = []
        if plan.plan.changes:
            if plan.drain is not None:
                _drain(plan.drain, processes.name)
            outcomes = self._apply(plan.plan, targets, store, seen.now)
        if plan.unrecorded:
            self._record_unrecorded(plan.unrecorded, plan.rendered, outcomes, store)
        return self._read_back(tuple(outcomes), conditions, plan, seen, processes)

    def _read_back(
        self,
        outcomes: tuple[Outcome, ...],
        conditions: list[Condition],
        plan: LocalPlan,
        seen: LocalSeen,
        processes: ProcessControl,
    ) -> LocalDone:
        """The processes and their health after acting. A pass that changed nothing (no
        outcome, no wipe, the same processes to run) and waited for nothing keeps what it
        observed: nothing it did can have changed it."""
        acted = bool(outcomes) or plan.new_instance or plan.listens != seen.listens
        observed = seen.probed.processes
        if self.manage_processes and acted:
            observed = observe_local.observe_processes(processes, sorted(PROCESS_INPUTS))
        waited = self.manage_processes and settle_restarted(
            observed, plan.listens, processes, seen.now
        )
        if not acted and not waited:
            return LocalDone(outcomes, tuple(conditions), seen.probed, dict(self.last_change))
        probed = probe_processes(
            processes,
            plan.spec,
            plan.listens,
            manage_processes=self.manage_processes,
            observed=observed if acted else None,
        )
        return LocalDone(outcomes, tuple(conditions), probed, dict(self.last_change))

    def _apply(self, plan: Plan, t: LocalTargets, store: Store, now: float) -> list[Outcome]:
        """Act on the plan's changes, through the retry book."""
        todo, outcomes = [], []
        for change in plan.changes:
            reason = self.book.blocked(change.key, _fingerprint(change, t.rendered))
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
        _record_applied(outcomes, t.rendered, store)
        return outcomes

    def _book_outcome(self, o: Outcome, rendered: Mapping[str, Rendered], now: float) -> Outcome:
        key = o.change.key
        if o.ok:
            self.book.succeeded(key)
            self.last_change[key] = now
            return o
        if o.permanent and key.kind is Kind.FILE:
            self.book.failed_permanently(key, _fingerprint(o.change, rendered), o.message)
            return o
        # temporary, or a process that may come back by itself (its binary restored)
        base = o.retry_after if o.retry_after is not None else 5.0
        return replace(o, retry_after=self.book.failed_temporarily(key, base))

    def _record_unrecorded(
        self,
        names: Sequence[str],
        rendered: Mapping[str, Rendered],
        outcomes: Sequence[Outcome],
        store: Store,
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

        store.update(upd)


def _drain(drain: Drain, runtime: str) -> None:
    """Wait (bounded) until what Prometheus' remote-write queue holds has been sent; the
    decision is the plan's (ampd.local.plan.drain)."""
    owner = process_user("prometheus", runtime).uid  # no squatter's metrics
    drained = promqueue.wait_drained(drain.listen, DRAIN_TIMEOUT, fetch=owned_get(owner, 2.0))
    if drained is not None:
        log_at = log.info if drained.drained else log.warning
        log_at(
            "remote_write.drain",
            drained=drained.drained,
            waited_s=round(drained.waited_s, 3),
            pending_at_end=drained.pending_at_end,
            reason=drain.reason,
        )


def _record_applied(
    outcomes: Sequence[Outcome], rendered: Mapping[str, Rendered], store: Store
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

    store.update(upd)


def _fingerprint(change: Change, rendered: Mapping[str, Rendered]) -> str:
    key = change.key
    if key.kind is Kind.FILE and key.name in rendered:
        return rendered[key.name].sha256
    return sha256_bytes(f"{key}:{change.action.value}".encode())
