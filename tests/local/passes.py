"""Run the local side as the engine does (``ampd.engine.side.run_side``), with writers
(an applying pass) or without (a plan), and fake runtimes to run it against: one that
can only be looked at (:class:`LookOnly`), one that records what it is told
(:class:`RecordingRuntime`), one that breaks (:class:`FlakyRuntime`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ampd.core import Command, ProcessState, SideResult
from ampd.engine.facts import Facts
from ampd.engine.side import run_side
from ampd.errors import TemporaryError
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


class LookOnly:
    """A runtime that can be looked at, and nothing else (a ``RuntimeView``): Prometheus
    runs with ``argv`` when ``running``; nothing else runs."""

    name = "supervisor"

    def __init__(self, running: bool = False, argv: tuple[str, ...] = ("prometheus",)) -> None:
        self.running = running
        self.argv = argv
        self.observed: list[str] = []

    def observe(self, name: str) -> ProcessState:
        self.observed.append(name)
        if name == "prometheus" and self.running:
            return ProcessState(name, running=True, pid=4242, command=Command(name, self.argv))
        return ProcessState(name, running=False)


class RecordingRuntime(LookOnly):
    """A runtime (``name``: "supervisor" or "systemd") that records, in order, what it is
    told and carries none of it out. ``failing``: the processes whose IMDS setting fails
    (as a ``systemctl set-property`` that polkit refuses)."""

    def __init__(self, name: str = "supervisor", running: bool = False) -> None:
        super().__init__(running)
        self.name = name
        self.calls: list[tuple[str, ...]] = []
        self.failing: set[str] = set()

    def start(self, command: Command) -> None:
        self.calls.append(("start", command.name))

    def stop(self, name: str, timeout: float = 10.0) -> None:
        self.calls.append(("stop", name))

    def restart(self, command: Command) -> None:
        self.calls.append(("restart", command.name))

    def reload(self, name: str) -> None:
        self.calls.append(("reload", name))

    def forget_data(self, name: str) -> None:
        self.calls.append(("forget_data", name))

    def set_imds(self, name: str, allowed: bool) -> None:
        if name in self.failing:
            raise TemporaryError(f"systemctl set-property ampd-{name}.service failed: boom", 5)
        self.calls.append(("set_imds", name, str(allowed)))

    def shutdown(self, timeout: float = 15.0) -> None:
        pass


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
