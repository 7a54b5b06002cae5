"""``ampd run``: triggers queue passes; passes never overlap; queued triggers coalesce.

Triggers: the state file or a file it references changing, a generated file changing
(drift), SIGHUP, a managed process exiting, the resync timer, a backoff timer. A pass
never branches on which trigger fired.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ampd.errors import AmpdError
from ampd.gateways import inotify, memory, progress
from ampd.gateways.files import atomic_write, read_bytes, sha256_bytes
from ampd.gateways.notify import Notifier
from ampd.gateways.paths import Paths

if TYPE_CHECKING:  # the rest is imported after READY=1 (see Daemon.run)
    from ampd.core import Change, ResourceKey
    from ampd.daemon.metrics import Metrics
    from ampd.engine.reconcile import Reconciler
    from ampd.engine.source import SpecSource
    from ampd.engine.status import PassSummary
    from ampd.local.side.side import OwnWrites

log = structlog.get_logger()

DEBOUNCE = 0.005  # the watcher gathers a burst itself; this only lets signals coalesce
MIN_PASS_GAP = 0.1
IDLE_WAKE = 30.0  # the loop sleeps until a trigger or the next pass; this only bounds it


class Daemon:
    def __init__(self, source: SpecSource, paths: Paths) -> None:
        self.source = source
        self.paths = paths
        self.own_writes: OwnWrites | None = None  # ampd's own writes into generated/
        self.notifier = Notifier()
        self.dirty = asyncio.Event()
        self.stopping = asyncio.Event()
        self.reload_requested = False
        self.passes = 0
        self.next_pass_at: float | None = None
        self.in_pass = False
        self._silent = False  # the pinger holds WATCHDOG=1 back (logged once)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.drift_seen: dict[ResourceKey, str] = {}
        self.why: set[str] = set()  # the triggers coalesced into the next pass
        self._rewatch = asyncio.Event()  # set: the watcher starts over with new targets
        self._watched: set[Path] = set()

    def trigger(self, why: str) -> None:
        log.debug("trigger", why=why)
        self.why.add(why)
        self.dirty.set()

    def _trigger_threadsafe(self, why: str) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.trigger, why)

    async def run(self) -> int:
        """Signals, the spec loaded, READY=1; then the rest of start-up (the runtime, the
        AWS side, what a pass renders with: most of it is importing them). Its status says
        the first pass is pending."""
        # Long on purpose: start-up in order (signals, READY=1, collaborators, loop, shutdown).
        self.loop = asyncio.get_running_loop()
        memory.limit_arenas()
        for sig, handler in (
            (signal.SIGTERM, self.stopping.set),
            (signal.SIGINT, self.stopping.set),
            (signal.SIGHUP, self._on_hup),
        ):
            self.loop.add_signal_handler(sig, handler)
        requested_runtime = self._read_spec()
        self.notifier.ready("Unknown · starting · first pass pending")
        from ampd.daemon.metrics import Metrics  # noqa: PLC0415 (after READY=1)
        from ampd.local.side.side import OwnWrites  # noqa: PLC0415
        from ampd.spec.models import split_listen  # noqa: PLC0415
        from ampd.wiring import (  # noqa: PLC0415
            api_call_counts,
            imds,
            make_runtime,
            reconciler,
            self_command,
        )

        self.paths.state_dir.mkdir(parents=True, exist_ok=True)
        self.own_writes = OwnWrites()  # the daemon's, handed to the local side
        runtime = make_runtime(
            self.source,
            lambda name: self._trigger_threadsafe(f"exit:{name}"),
            requested_runtime,
        )
        rec = reconciler(
            self.source,
            self.paths,
            runtime,
            aws=True,
            instance_facts=imds.instance_labels,
            self_command=self_command(),
            own_writes=self.own_writes,
        )
        rec.on_aws_done = lambda: self._trigger_threadsafe("aws-done")
        metrics = Metrics(api_call_counts, notifier=self.notifier)
        rec.load_spec()
        if rec.loaded is not None and rec.loaded.spec.metrics.enabled:
            host, port = split_listen(rec.loaded.spec.metrics.listen)
            try:
                metrics.serve(host, port)
            except OSError as e:
                log.error(
                    "metrics.listen_failed", listen=rec.loaded.spec.metrics.listen, error=str(e)
                )
        watcher = asyncio.create_task(self._watch(rec))
        self.dirty.set()
        log.info(
            "daemon.ready",
            state=self.source.name,
            runtime=runtime.name,
            state_dir=str(self.paths.state_dir),
        )
        try:
            await self._loop(rec, metrics)
        finally:
            self.notifier.stopping()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            log.info("daemon.stopping")
            await asyncio.to_thread(runtime.shutdown)
            rec.close()
        return 0

    def _read_spec(self) -> str:
        """READY=1 comes once the spec is loaded: parsed and checked against the schema
        here (a broken one is reported by the first pass, and ampd still starts). The
        runtime, the AWS side and the rest of a pass are imported after READY=1.
        Returns the spec's ``runtime`` ("auto" when the file is broken or missing)."""
        from ampd.errors import SpecError  # noqa: PLC0415
        from ampd.spec.load import load_spec  # noqa: PLC0415

        with contextlib.suppress(SpecError, OSError, ValueError):
            return load_spec(self.source.text(), self.source.name).spec.runtime
        return "auto"

    def _on_hup(self) -> None:
        self.reload_requested = True
        self.notifier.reloading()
        self.trigger("sighup")

    async def _pinger(self) -> None:
        """WATCHDOG=1 while the loop is alive and a running pass makes progress.

        Idle, the loop is alive whenever this task runs (they share the event loop). In a
        pass, it pings only if the pass completed a step (``progress.mark()``) within the
        last half ``WatchdogSec``: a long pass that progresses is not killed, and a pass
        stuck in one call, like a wedged event loop, stops the pings."""
        half = self.notifier.watchdog_interval  # WatchdogSec / 2
        if half is None:
            return
        while not self.stopping.is_set():
            stuck = self.in_pass and progress.age() >= half
            if not stuck:
                self.notifier.watchdog()
            if stuck != self._silent:
                self._silent = stuck
                at = log.warning if stuck else log.info
                at(
                    "watchdog.held" if stuck else "watchdog.resumed",
                    idle_s=round(progress.age(), 1),
                )
            await asyncio.sleep(half / 2)

    async def _loop(self, rec: Reconciler[Any], metrics: Metrics) -> None:
        pinger = asyncio.create_task(self._pinger())
        try:
            await self._passes(rec, metrics)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger

    async def _passes(self, rec: Reconciler[Any], metrics: Metrics) -> None:
        while not self.stopping.is_set():
            timeout = IDLE_WAKE
            if self.next_pass_at is not None:
                timeout = max(0.0, min(timeout, self.next_pass_at - time.time()))
            stop = asyncio.create_task(self.stopping.wait())
            dirty = asyncio.create_task(self.dirty.wait())
            await asyncio.wait({stop, dirty}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            dirty.cancel()
            if self.stopping.is_set():
                return
            due = self.next_pass_at is not None and time.time() >= self.next_pass_at
            if not self.dirty.is_set() and not due:
                continue
            await asyncio.sleep(DEBOUNCE)  # coalesce a burst of triggers into one pass
            self.dirty.clear()
            why, self.why = self.why or {"timer"}, set()
            await self._one_pass(rec, metrics, sorted(why))
            await asyncio.sleep(MIN_PASS_GAP)

    async def _one_pass(self, rec: Reconciler[Any], metrics: Metrics, why: list[str]) -> None:
        if self.reload_requested:
            rec.book.forget_permanent()  # an operator's reload retries what was given up on
            self.source.look_now()  # and looks at an ssm:/s3:// state at once
        progress.mark()
        self.in_pass = True
        try:
            summary = await asyncio.to_thread(rec.run_pass)
        except Exception as e:  # the loop never dies: report, back off, try again
            delay = rec.book.failed_temporarily("pass")
            log.error(
                "reconcile.crashed",
                error=f"{type(e).__name__}: {e}",
                traceback=traceback.format_exc(),
                retry_after=round(delay, 2),
            )
            self.next_pass_at = time.time() + delay
            self.notifier.status(f"Unknown · Degraded · reconcile pass failed: {e}"[:400])
            return
        finally:
            self.in_pass = False
        rec.book.succeeded("pass")
        self.passes += 1
        self.next_pass_at = summary.next_pass_at
        from ampd.engine.status import new_drift, status_document  # noqa: PLC0415 (loaded)

        now = time.time()
        fresh_drift, self.drift_seen = new_drift(self.drift_seen, summary.plan.drift)
        doc = status_document(summary, pid=os.getpid(), now=now)  # once per pass
        metrics.observe(summary, now, fresh_drift)
        self._write_status(doc)
        self._log_summary(summary, doc, fresh_drift, why)
        self.notifier.status(doc["line"])
        if self.reload_requested:
            self.reload_requested = False
            self.notifier.ready()
        if self._watch_targets(rec) != self._watched:
            self._rewatch.set()  # the spec names other files now
        memory.trim()  # idle RSS is what a pass needs, not what the busiest pass took

    def _write_status(self, doc: dict[str, Any]) -> None:
        try:
            atomic_write(self.paths.status, json.dumps(doc, indent=2).encode() + b"\n", 0o640)
        except (AmpdError, OSError) as e:
            log.error("status.write_failed", path=str(self.paths.status), error=str(e))

    def _log_summary(
        self, s: PassSummary, doc: dict[str, Any], fresh_drift: list[Change], why: list[str]
    ) -> None:
        log.info(
            "reconcile.summary",
            generation=s.spec_generation,
            duration_ms=round(s.duration_s * 1000, 1),
            changes_applied=s.applied,
            changes_failed=s.failed,
            drift=len(s.plan.drift),
            skipped=len(s.plan.skipped),
            sync=doc["sync"],
            health=doc["health"],
            spec_valid=s.spec_error is None,
            reconcile_id=s.reconcile_id,
            triggers=why[:10],  # what queued this pass (for people; the pass ignores it)
        )
        for change in fresh_drift:
            corrected = any(o.ok and o.change.key == change.key for o in s.outcomes)
            log.warning(
                "drift.detected",
                key=str(change.key),
                kind=change.key.kind.value,
                name=change.key.name,
                fields=[d.field for d in change.diffs],
                before=change.before,
                after=change.after,
                reason=change.reason,
                corrected=corrected,
            )

    async def _watch(self, rec: Reconciler[Any]) -> None:
        """inotify on the state file's directory, the files it names and generated/.
        Watched anew whenever a pass changes the set of files the spec names."""
        while not self.stopping.is_set():
            targets = self._watched = self._watch_targets(rec)
            dirs = sorted({p.parent for p in targets if p.parent.exists()} | self._gen_dirs())
            self._rewatch = asyncio.Event()
            try:
                events = inotify.watch(dirs, self._rewatch)
                async with contextlib.aclosing(events):
                    async for changes in events:
                        hit = [
                            p
                            for p in sorted(changes)
                            if self._interesting(p, targets) and not self._own_write(rec, p)
                        ]
                        if hit:
                            self.trigger(f"file:{hit[0]}")
            except OSError as e:
                log.warning("watch.failed", error=str(e))
                await asyncio.sleep(1)

    def _own_write(self, rec: Reconciler[Any], path: Path) -> bool:
        """ampd's own write into generated/ needs no pass; a hand edit there does."""
        if self.paths.generated not in path.parents:
            return False
        data = read_bytes(path) if path.is_file() else None
        own = self.own_writes
        sha = sha256_bytes(data) if data is not None else None
        return own is not None and own.is_own(path, sha)

    def _gen_dirs(self) -> set[Path]:
        gen = self.paths.generated
        gen.mkdir(parents=True, exist_ok=True)
        return {gen}

    def _interesting(self, path: Path, targets: set[Path]) -> bool:
        if path.name.startswith(".") and path.name.endswith((".tmp", ".candidate")):
            return False
        return (
            path in targets
            or self.paths.generated in path.parents
            or path.parent in {t for t in targets if t.is_dir()}
        )

    def _watch_targets(self, rec: Reconciler[Any]) -> set[Path]:
        """The state (or a remote state's cached copy) and every file it names."""
        out = {self.source.watched()}
        if rec.loaded is not None:
            out |= {Path(named.path) for named in rec.loaded.spec.named_files()}
        return out


def run_daemon(source: SpecSource, paths: Paths) -> int:
    try:
        return asyncio.run(Daemon(source, paths).run())
    except KeyboardInterrupt:
        return 0
    finally:
        sys.stderr.flush()
