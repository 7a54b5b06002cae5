"""PidWatch (ampd.gateways.pidwatch) with real processes and real signals: the exit of a
watched pid calls on_exit at once, from one thread; what is unwatched or replaced does not.
SystemdRuntime (fake systemctl, real pids) watches the MainPID it observes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ampd.core import Command
from ampd.gateways.paths import Paths
from ampd.gateways.pidwatch import PidWatch
from ampd.gateways.systemd import Completed, SystemdRuntime


class Exits:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.at: list[float] = []
        self.cond = threading.Condition()

    def __call__(self, name: str) -> None:
        with self.cond:
            self.names.append(name)
            self.at.append(time.monotonic())
            self.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[str]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.names) >= count, timeout)
        assert ok, f"on_exit called {len(self.names)} times, not {count}: {self.names}"
        return list(self.names)


@pytest.fixture
def exits() -> Exits:
    return Exits()


@pytest.fixture
def watch(exits: Exits) -> Iterator[PidWatch]:
    w = PidWatch(exits)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def sleeper(procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(["/bin/sleep", "600"])
    procs.append(p)
    return p


def test_kill_9_of_a_watched_pid_calls_on_exit_at_once(
    watch: PidWatch, exits: Exits, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    p = sleeper(sleepers)
    watch.watch("prometheus", p.pid)
    assert watch.watching("prometheus") == p.pid
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGKILL)
    assert exits.wait_for(1) == ["prometheus"]
    took = exits.at[0] - t0
    assert took < 0.5, f"exit noticed {took * 1000:.1f} ms after kill -9"
    assert watch.watching("prometheus") is None  # once: the pidfd is closed


def test_a_pid_gone_before_it_is_watched_is_an_exit(watch: PidWatch, exits: Exits) -> None:
    p = subprocess.Popen(["/bin/true"])
    p.wait()  # exited and reaped: the pid names nothing now
    watch.watch("grafana", p.pid)
    assert exits.wait_for(1) == ["grafana"]
    assert watch.watching("grafana") is None


def test_unwatched_and_replaced_pids_are_not_reported(
    watch: PidWatch, exits: Exits, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    a, b, c, d = (sleeper(sleepers) for _ in range(4))
    watch.watch("prometheus", a.pid)
    watch.watch("sigv4-proxy", b.pid)
    watch.watch("prometheus", c.pid)  # replaces a
    watch.watch("grafana", d.pid)
    watch.unwatch("sigv4-proxy")  # ampd stops it itself
    for p in (a, b):
        p.kill()
        p.wait()
    d.kill()  # the marker: by the time it is seen, a and b would have been too
    assert exits.wait_for(1) == ["grafana"]
    c.kill()
    assert exits.wait_for(2) == ["grafana", "prometheus"]


def test_several_watched_pids_are_each_reported(
    watch: PidWatch, exits: Exits, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    procs = {name: sleeper(sleepers) for name in ("prometheus", "sigv4-proxy", "grafana")}
    for name, p in procs.items():
        watch.watch(name, p.pid)
    for p in procs.values():
        os.kill(p.pid, signal.SIGKILL)
    assert sorted(exits.wait_for(3)) == sorted(procs)


def test_a_failing_callback_does_not_stop_the_watcher(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    seen = Exits()

    def on_exit(name: str) -> None:
        seen(name)
        if name == "prometheus":
            raise RuntimeError("boom")

    w = PidWatch(on_exit)
    try:
        a, b = sleeper(sleepers), sleeper(sleepers)
        w.watch("prometheus", a.pid)
        a.kill()
        seen.wait_for(1)
        w.watch("grafana", b.pid)
        b.kill()
        assert seen.wait_for(2) == ["prometheus", "grafana"]
    finally:
        w.close()


# -- SystemdRuntime watches what it observes ------------------------------------------------


class Units:
    """``systemctl show`` answers from ``props[unit]``; other verbs are recorded."""

    def __init__(self) -> None:
        self.props: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.shows = 0

    def __call__(self, argv: Sequence[str], timeout: float) -> Completed:
        if argv[0] == "journalctl":
            return Completed(0, "", "")
        verb, unit = argv[3], argv[4]
        if verb == "show":
            self.shows += 1
            props = {"LoadState": "loaded", **self.props.get(unit, {})}
            return Completed(0, "".join(f"{k}={v}\n" for k, v in props.items()), "")
        self.calls.append((verb, unit))
        return Completed(0, "", "")


def active(pid: int) -> dict[str, str]:
    return {"ActiveState": "active", "SubState": "running", "MainPID": str(pid)}


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "state", tmp_path / "run")


def test_systemd_runtime_reports_the_exit_of_the_main_pid_it_observed(
    paths: Paths, exits: Exits, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    units = Units()
    runtime = SystemdRuntime(paths, run=units, on_exit=exits)
    try:
        p, q = sleeper(sleepers), sleeper(sleepers)
        units.props["ampd-prometheus.service"] = active(p.pid)
        units.props["ampd-grafana.service"] = active(q.pid)
        assert runtime.observe("prometheus").pid == p.pid
        assert runtime.observe("grafana").pid == q.pid
        runtime.restart(Command("grafana", ("/bin/true",)))  # ampd's own: not reported
        q.kill()
        q.wait()
        os.kill(p.pid, signal.SIGKILL)
        assert exits.wait_for(1) == ["prometheus"]
        # after ampd's restart the new MainPID is watched again
        r = sleeper(sleepers)
        units.props["ampd-grafana.service"] = active(r.pid)
        runtime.observe("grafana")
        r.kill()
        assert exits.wait_for(2) == ["prometheus", "grafana"]
    finally:
        runtime.shutdown()


def test_observe_waits_for_a_unit_systemd_is_restarting(
    paths: Paths, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    """Between the exit and RestartSec= the unit is in auto-restart: observe waits
    (bounded) and reports the new MainPID instead of "not running"."""
    p = sleeper(sleepers)
    units = Units()
    unit = "ampd-prometheus.service"
    units.props[unit] = {"ActiveState": "activating", "SubState": "auto-restart"}

    def restarted() -> None:
        units.props[unit] = active(p.pid) | {"NRestarts": "1"}

    timer = threading.Timer(0.1, restarted)
    timer.start()
    try:
        state = SystemdRuntime(paths, run=units).observe("prometheus")
    finally:
        timer.cancel()
    assert state.running and state.pid == p.pid and state.restarts == 1
    assert units.shows >= 2


def test_observe_of_a_unit_stuck_restarting_is_bounded(paths: Paths) -> None:
    units = Units()
    units.props["ampd-prometheus.service"] = {
        "ActiveState": "activating",
        "SubState": "auto-restart",
    }
    t0 = time.monotonic()
    state = SystemdRuntime(paths, run=units, restart_wait=0.2).observe("prometheus")
    took = time.monotonic() - t0
    assert not state.running and 0.2 <= took < 2.0, f"observe took {took:.2f} s"


@pytest.mark.parametrize(
    "how",
    [
        {"Result": "start-limit-hit"},
        # the limit hit on an automatic restart: Result= stays the last exit's (systemd 252)
        {"Result": "exit-code", "NRestarts": "4", "ExecMainCode": "1", "ExecMainStatus": "3"},
    ],
)
def test_a_unit_that_hit_its_start_limit_is_backed_off(paths: Paths, how: dict[str, str]) -> None:
    units = Units()
    failed_mono_usec = int((time.monotonic() - 5) * 1_000_000)  # failed 5 s ago
    units.props["ampd-prometheus.service"] = {
        "ActiveState": "failed",
        "InactiveEnterTimestampMonotonic": str(failed_mono_usec),
        **how,
    }
    state = SystemdRuntime(paths, run=units).observe("prometheus")
    assert state.crash_looping and state.backoff_until is not None
    left = state.backoff_until - time.time()
    assert 20 < left < 26, left


def test_a_unit_stopped_or_failed_once_is_not_backed_off(paths: Paths) -> None:
    units = Units()
    units.props["ampd-prometheus.service"] = {
        "ActiveState": "failed",
        "Result": "exit-code",
        "NRestarts": "0",
    }
    assert SystemdRuntime(paths, run=units).observe("prometheus").backoff_until is None
    units.props["ampd-prometheus.service"] = {"ActiveState": "inactive", "Result": "success"}
    assert SystemdRuntime(paths, run=units).observe("prometheus").backoff_until is None
