"""The local side: generated files and the processes that read them.

One pass (``ampd.engine.side.run_side``) is four steps:

- ``observe``: read the generated files, ampd.json's record, the processes, who holds
  their ports, their health, Prometheus' configuration-reload state and the remote-write
  evidence -- through a runtime it may only look at (``RuntimeView``) and a store it may
  only read (``StoreView``);
- ``plan``: render every file from the spec and the facts and decide, purely, the file
  and process changes, the drain, the IMDS fence;
- ``apply``: carry that plan out through the writers it is handed (``LocalWriters``), and
  read back the processes;
- ``report``: statuses and conditions, purely.

Without writers (``ampd plan``) nothing is touched: no file, no process, no ampd.json,
no wipe of a baked instance's data.

The side remembers, between passes: the remote-write counters' baseline, the latch of
a Prometheus that claimed to sign natively and did not (from then on it is rendered as
one that cannot, so the proxy signs), the retry book, ampd's own writes, the IMDS fence
as set and when each resource last changed.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from ampd.core import SideResult
from ampd.engine.facts import Facts
from ampd.engine.retry import RetryBook
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import RuntimeView
from ampd.gateways.store import StoreView
from ampd.gateways.users import user_names
from ampd.local.act.imds_fence import ImdsFence
from ampd.local.act.local import DRAIN_TIMEOUT, LocalActor, OwnWrites
from ampd.local.observe.seen import LocalEyes, observe_side
from ampd.local.plan.local import LocalPlan, plan_local
from ampd.local.plan.values import LocalDone, LocalSeen
from ampd.local.render.context import RenderContext
from ampd.local.render.effective import effective_spec, render_context, render_files
from ampd.local.report.flow import FlowTracker
from ampd.local.report.result import PROGRESS_RECHECK, local_result
from ampd.local.side.writers import LocalWriters
from ampd.spec.models import StateSpec

__all__ = [
    "DRAIN_TIMEOUT",
    "PROGRESS_RECHECK",
    "LocalDone",
    "LocalPlan",
    "LocalSeen",
    "LocalSide",
    "LocalWriters",
    "OwnWrites",
    "render_files",
]

log = structlog.get_logger()


class LocalSide:
    """``ampd.engine.side.Side[LocalSeen, LocalPlan, LocalDone, LocalWriters]``."""

    def __init__(
        self,
        paths: Paths,
        runtime: RuntimeView,
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
        self.state_path = state_path
        self.self_command = self_command
        self.manage_processes = manage_processes
        self.own_writes = own_writes or OwnWrites()
        self.flow = FlowTracker()
        self.native_failed = False  # the latch: claimed to sign natively, and did not
        self._actor = LocalActor(
            paths, book or RetryBook(), self.own_writes, manage_processes=manage_processes
        )

    @property
    def name(self) -> str:
        return "local"

    @property
    def imds(self) -> ImdsFence:
        """The IMDS fence as last set."""
        return self._actor.fence

    def context(
        self, spec: StateSpec, facts: Facts, seen: LocalSeen | None = None
    ) -> RenderContext:
        """The render context, with the native-signing latch applied: as it stood when
        ``seen`` was read (the users the processes run as, too), else as it stands."""
        return render_context(
            spec,
            facts,
            source=self.state_path,
            state_dir=self.paths.state_dir,
            python=self.self_command,
            process_users=seen.process_users if seen else user_names(self.runtime.name),
            native_failed=seen.native_failed if seen else self.native_failed,
        )

    def observe(self, spec: StateSpec, facts: Facts) -> LocalSeen:
        ctx = self.context(spec, facts)
        eyes = LocalEyes(self.runtime, self._store, self.paths.generated, self.manage_processes)
        seen = observe_side(
            eyes,
            effective_spec(spec, ctx),
            ctx,
            now=time.time(),
            flow=self.flow,
            native_failed=self.native_failed,
            last_change=self._actor.last_change,
            reads=facts.reads,  # Prometheus' /metrics, read once this pass for every side
        )
        if seen.native_failed and not self.native_failed:
            detail = seen.flow.message if seen.flow is not None else None
            log.warning("remote_write.native_unsigned", detail=detail)
            self.native_failed = True
        return seen

    def plan(self, spec: StateSpec, facts: Facts, seen: LocalSeen) -> LocalPlan:
        return plan_local(
            spec,
            self.context(spec, facts, seen),
            seen,
            instance_id=facts.instance_id,
            manage_processes=self.manage_processes,
        )

    def apply(self, plan: LocalPlan, seen: LocalSeen, writers: LocalWriters) -> LocalDone:
        return self._actor.apply(
            plan, seen, store=writers.store, processes=writers.processes, files=writers.files
        )

    def report(
        self,
        spec: StateSpec,
        facts: Facts,
        seen: LocalSeen,
        plan: LocalPlan,
        done: LocalDone | None,
    ) -> SideResult:
        return local_result(seen, plan, done)
