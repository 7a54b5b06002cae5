"""Run the local side as the engine does (``ampd.engine.side.run_side``), with writers
(an applying pass) or without (a plan), and fake runtimes to run it against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ampd.core import Command, ProcessState, SideResult
from ampd.engine.facts import Facts
from ampd.engine.side import run_side
from ampd.gateways.files import FileWriter
from ampd.gateways.runtime import ProcessControl
from ampd.gateways.store import Store
from ampd.local.side.side import LocalSide
from ampd.local.side.writers import LocalWriters
from ampd.spec.models import StateSpec

if TYPE_CHECKING:  # checked by mypy: the side is a Side, the daemon's Writers its writers
    from ampd.engine.side import Side
    from ampd.local.side.side import LocalDone, LocalPlan, LocalSeen
    from ampd.wiring import Writers

    def _daemon_writers(w: Writers) -> LocalWriters:
        return w

    def _a_side(s: LocalSide) -> Side[LocalSeen, LocalPlan, LocalDone, LocalWriters]:
        return s


@dataclass(frozen=True)
class TestWriters:
    """The writers of an applying pass, as ampd.wiring builds them, for one store."""

    store: Store
    processes: ProcessControl
    files: FileWriter


def writers(store: Store, processes: ProcessControl) -> LocalWriters:
    return TestWriters(store, processes, FileWriter())


def applied(
    side: LocalSide, spec: StateSpec, facts: Facts, store: Store, processes: ProcessControl
) -> SideResult:
    """One applying pass."""
    return run_side(side, spec, facts, writers(store, processes))


def planned(side: LocalSide, spec: StateSpec, facts: Facts) -> SideResult:
    """One plan: no writers."""
    return run_side(side, spec, facts, None)


class FlakyRuntime:
    """A runtime gateway with a bug: ``observe`` raises RuntimeError until fixed."""

    name = "fake"

    def __init__(self) -> None:
        self.broken = True
        self.started: list[str] = []

    def observe(self, name: str) -> ProcessState:
        if self.broken:
            raise RuntimeError("observe exploded")
        return ProcessState(name, running=name in self.started)

    def start(self, command: Command) -> None:
        self.started.append(command.name)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        self.started.remove(name)

    def restart(self, command: Command) -> None:
        pass

    def reload(self, name: str) -> None:
        pass

    def forget_data(self, name: str) -> None:
        if name in self.started:
            self.started.remove(name)

    def set_imds(self, name: str, allowed: bool) -> None:
        pass

    def shutdown(self, timeout: float = 15.0) -> None:
        pass
