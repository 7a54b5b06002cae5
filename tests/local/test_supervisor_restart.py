"""The supervisor restarts a child that died at once the first time; only repeated quick
crashes wait (ampd.gateways.supervisor). Real child processes, real signals; the
supervisor's clock (start times, crash times, backoff) is a FakeClock."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from ampd.core import Command
from ampd.gateways.supervisor import Supervisor
from tests.harness.clock import FakeClock

SLEEPER = Command("prometheus", ("/bin/sleep", "600"))


class Exits:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.event = threading.Event()

    def __call__(self, name: str) -> None:
        self.names.append(name)
        self.event.set()

    def wait(self, timeout: float = 5.0) -> None:
        assert self.event.wait(timeout), "on_exit was not called"
        self.event.clear()


@pytest.fixture
def exits() -> Exits:
    return Exits()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sup(exits: Exits, clock: FakeClock) -> Iterator[Supervisor]:
    s = Supervisor(on_exit=exits, backoff_base=1.0, stable_after=0.5, wall_clock=clock.time)
    try:
        yield s
    finally:
        s.shutdown(timeout=5)


def kill(sup: Supervisor, exits: Exits) -> float:
    pid = sup.observe("prometheus").pid
    assert pid is not None
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    exits.wait()
    return time.monotonic() - t0


def test_the_first_crash_is_noticed_at_once_and_not_held_back(
    sup: Supervisor, exits: Exits
) -> None:
    sup.start(SLEEPER)
    noticed = kill(sup, exits)
    assert noticed < 1.0  # the child's exit, not a poll
    st = sup.observe("prometheus")
    assert not st.running and st.last_exit == -signal.SIGKILL
    assert st.backoff_until is None  # the next pass starts it
    assert st.restarts == 1 and not st.crash_looping


def test_repeated_quick_crashes_back_off_exponentially(
    sup: Supervisor, exits: Exits, clock: FakeClock
) -> None:
    waits = []
    for _ in range(3):
        sup.start(SLEEPER)
        kill(sup, exits)
        until = sup.observe("prometheus").backoff_until
        waits.append(0.0 if until is None else until - clock.time())
    assert waits[0] == 0.0
    assert 0.5 < waits[1] <= 1.0  # base
    assert 1.5 < waits[2] <= 2.0  # doubled
    assert sup.observe("prometheus").crash_looping


def test_a_crash_after_a_stable_run_starts_a_fresh_count(
    sup: Supervisor, exits: Exits, clock: FakeClock
) -> None:
    sup.start(SLEEPER)
    kill(sup, exits)
    sup.start(SLEEPER)
    assert sup.observe("prometheus").started_at == clock.time()
    clock.advance(0.6)  # longer than stable_after
    kill(sup, exits)
    assert sup.observe("prometheus").backoff_until is None


def test_backoff_table() -> None:
    s = Supervisor(backoff_base=1.0, backoff_cap=8.0)
    assert [s.backoff(n) for n in range(1, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
