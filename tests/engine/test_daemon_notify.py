"""sd_notify from the real daemon: READY=1 before any AWS call, STATUS=, WATCHDOG=1,
RELOADING=1/READY=1 around SIGHUP; a pass stuck in one call stops the watchdog pings, a
pass that makes progress does not.

Nothing in ampd is told to wedge: the stuck pass is real. The test stops (SIGSTOP) the
Prometheus that ampd probes, so a pass waits on it for a bounded time much longer than
the test's WatchdogSec, then lets it go on (SIGCONT)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.prombins import PromBin
from tests.harness.wait import wait_for
from tests.local.test_daemon_local import base_state, resource


class NotifySocket:
    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def fields(self) -> list[str]:
        return [f for m in self.drain() for f in m.split("\n")]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifySocket]:
    addr = (
        str(tmp_path / "notify.sock") if request.param == "path" else f"@ampd-test-{time.time_ns()}"
    )
    s = NotifySocket(addr)
    yield s
    s.close()


def test_ready_status_watchdog_and_reload(tmp_path: Path, notify: NotifySocket) -> None:
    proc = AmpdProcess(
        tmp_path,
        env={
            "NOTIFY_SOCKET": notify.address,
            "WATCHDOG_USEC": "400000",
            # an AWS endpoint that never answers must not delay READY=1
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        },
    )
    proc.write_state(
        {
            "version": 1,
            "prometheus": {"enabled": False},
            "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        }
    )
    try:
        t0 = time.monotonic()
        proc.start()
        wait_for(lambda: "READY=1" in notify.fields(), 15, what="READY=1")
        assert time.monotonic() - t0 < 15
        wait_for(
            lambda: any(f.startswith("STATUS=Synced") for f in notify.fields()),
            what="a STATUS= roll-up",
        )
        wait_for(lambda: notify.fields().count("WATCHDOG=1") >= 3, what="several WATCHDOG=1")

        n_ready = notify.fields().count("READY=1")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "RELOADING=1" in notify.fields(), what="RELOADING=1")
        assert any(f.startswith("MONOTONIC_USEC=") for f in notify.fields())
        wait_for(lambda: notify.fields().count("READY=1") > n_ready, what="READY=1 after reload")
        pings = notify.fields().count("WATCHDOG=1")
        wait_for(lambda: notify.fields().count("WATCHDOG=1") > pings + 3, what="pings go on")
    finally:
        assert proc.stop() == 0
    assert "STOPPING=1" in notify.fields()


def test_a_notify_socket_that_stops_draining_never_blocks_the_loop(
    tmp_path: Path, notify: NotifySocket
) -> None:
    """#17: sendto() on a full notify socket used to block the loop, and SIGTERM was then
    ignored until the socket went away. Nobody reads ``notify`` in this test."""
    proc = AmpdProcess(
        tmp_path,
        env={
            "NOTIFY_SOCKET": notify.address,
            "WATCHDOG_USEC": "100000",  # a ping every 50 ms fills the queue within a second
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        },
    )
    proc.write_state(
        {
            "version": 1,
            "prometheus": {"enabled": False},
            "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        }
    )

    def events() -> list[str]:
        lines = proc.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line).get("event", "") for line in lines if line.startswith("{")]

    try:
        proc.start()
        wait_for(lambda: "notify.dropped" in events(), what="the daemon to drop a notification")
        # the loop still runs passes: a state edit is picked up and reported
        first = wait_for(proc.status, what="status.json")
        proc.write_state(
            {
                "version": 1,
                "prometheus": {"enabled": False},
                "metrics": {"listen": f"127.0.0.1:{free_port()}"},
            }
        )
        wait_for(
            lambda: (proc.status() or {}).get("generated_at") != first.get("generated_at"),
            what="a pass after the edit",
        )
    finally:
        stopped_at = time.monotonic()
        code = proc.stop(timeout=20)
        took = time.monotonic() - stopped_at
        if code != 0:
            proc.print_log_tail()
    assert code == 0
    assert took < 15, f"SIGTERM took {took:.1f} s"
    assert events().count("notify.dropped") >= 1
    assert "daemon.stopping" in events()
    assert len(notify.drain()) > 0  # READY=1 and the first pings did land


class Pings:
    """Arrival times of WATCHDOG=1 on a notify socket."""

    def __init__(self, notify: NotifySocket) -> None:
        self.notify = notify
        self.seen = 0
        self.times: list[float] = []

    def poll(self) -> list[float]:
        n = self.notify.fields().count("WATCHDOG=1")
        self.times += [time.monotonic()] * (n - self.seen)
        self.seen = n
        return self.times

    def silent_for(self, seconds: float) -> bool:
        times = self.poll()
        return bool(times) and time.monotonic() - times[-1] >= seconds


WATCHDOG_S = 2.0  # the test's WatchdogSec: ampd pings every 0.5 s, if it progresses
START_DELAY = 2.5  # longer than WatchdogSec, shorter than ampd's wait for a start (5 s)


def launcher(real: Path, delay: float = 0.0) -> str:
    """A Prometheus that takes ``delay`` seconds before it starts (answers --version at
    once, as ampd probes it)."""
    return (
        "#!/bin/sh\n"
        f'case "$1" in --version|-v) exec {real} "$@";; esac\n'
        f"sleep {delay}\n"
        f'exec {real} "$@"\n'
    )


def ready(listen: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{listen}/-/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def install(path: Path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.rename(path)


def test_a_long_pass_that_progresses_pings_and_a_stuck_one_does_not(
    tmp_path: Path, prometheus_bin: PromBin
) -> None:
    binary = trusted_dir() / "prometheus"
    (binary.parent / "promtool").symlink_to(prometheus_bin.binary.parent / "promtool")
    install(binary, launcher(prometheus_bin.binary))
    notify = NotifySocket(str(tmp_path / "notify.sock"))
    proc = AmpdProcess(
        tmp_path,
        env={
            "NOTIFY_SOCKET": notify.address,
            "WATCHDOG_USEC": str(int(WATCHDOG_S * 1_000_000)),
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        },
    )
    port = free_port()
    proc.write_state(base_state(port, free_port(), binary=binary))
    pings = Pings(notify)
    prom_pid = 0
    try:
        proc.start()
        proc.wait_healthy(60)
        wait_for(lambda: len(pings.poll()) >= 3, what="pings")

        # 1. a pass longer than WatchdogSec that makes progress keeps pinging: ampd
        # restarts a killed Prometheus that now takes 2.5 s to start, and waits for it
        install(binary, launcher(prometheus_bin.binary, delay=START_DELAY))
        killed = int(resource(proc, "process", "prometheus")["message"].split()[-1])
        listen = f"127.0.0.1:{port}"
        t0 = time.monotonic()
        os.kill(killed, signal.SIGKILL)
        wait_for(
            lambda: pings.poll() and ready(listen),
            30,
            what="the new prometheus ready",
            interval=0.02,
        )
        took = time.monotonic() - t0
        during = [t for t in pings.poll() if t >= t0]
        marks = [t0, *during, time.monotonic()]
        gaps = [b - a for a, b in itertools.pairwise(marks)]
        assert took > WATCHDOG_S, f"the restart took {took:.2f} s: not a long pass"
        assert max(gaps) < 0.9 * WATCHDOG_S, f"pings held back in a pass that progressed: {gaps}"
        wait_for(
            lambda: (
                (r := proc.resource("process", "prometheus"))
                and r["health"] == "Healthy"
                and r["message"] != f"pid {killed}"
            ),
            30,
            what="a new healthy prometheus",
        )

        # 2. a pass stuck in one call does not: ampd's health probe of a Prometheus that
        # answers nothing waits 2 s (bounded, but longer than WatchdogSec)
        install(binary, launcher(prometheus_bin.binary))
        prom_pid = int(resource(proc, "process", "prometheus")["message"].split()[-1])
        os.kill(prom_pid, signal.SIGSTOP)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)  # a pass now
        wait_for(lambda: pings.silent_for(WATCHDOG_S), 20, what="the pings to stop", interval=0.05)
        assert "watchdog.held" in [e.get("event") for e in proc.logs()]
        os.kill(prom_pid, signal.SIGCONT)
        stopped_at = pings.times[-1]
        wait_for(lambda: pings.poll()[-1] > stopped_at, 30, what="pings resume")
    finally:
        if prom_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(prom_pid, signal.SIGCONT)
        code = proc.stop()
        notify.close()
    assert code == 0
