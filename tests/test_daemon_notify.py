"""sd_notify from the real daemon: READY=1 before any AWS call, STATUS=, WATCHDOG=1,
RELOADING=1/READY=1 around SIGHUP; a wedged loop stops the watchdog pings."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.fixtures_local import AmpdProcess, free_port, wait_for


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
            "AMPD_TEST_WEDGE_FILE": str(tmp_path / "wedge"),
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
        wait_for("READY=1", lambda: "READY=1" in notify.fields(), timeout=15)
        assert time.monotonic() - t0 < 15
        wait_for(
            "a STATUS= roll-up", lambda: any(f.startswith("STATUS=Synced") for f in notify.fields())
        )
        wait_for("several WATCHDOG=1", lambda: notify.fields().count("WATCHDOG=1") >= 3)

        n_ready = notify.fields().count("READY=1")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        wait_for("RELOADING=1", lambda: "RELOADING=1" in notify.fields())
        assert any(f.startswith("MONOTONIC_USEC=") for f in notify.fields())
        wait_for("READY=1 after reload", lambda: notify.fields().count("READY=1") > n_ready)

        (tmp_path / "wedge").touch()
        time.sleep(0.5)  # let a ping that was already in flight land
        pings = notify.fields().count("WATCHDOG=1")
        time.sleep(1.0)  # a healthy loop pings every 0.2 s; a wedged one not at all
        assert notify.fields().count("WATCHDOG=1") == pings
        (tmp_path / "wedge").unlink()
        wait_for("pings resume", lambda: notify.fields().count("WATCHDOG=1") > pings)
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
        wait_for("the daemon to drop a notification", lambda: "notify.dropped" in events())
        # the loop still runs passes: a state edit is picked up and reported
        first = wait_for("status.json", proc.status)
        proc.write_state(
            {
                "version": 1,
                "prometheus": {"enabled": False},
                "metrics": {"listen": f"127.0.0.1:{free_port()}"},
            }
        )
        wait_for(
            "a pass after the edit",
            lambda: (proc.status() or {}).get("generated_at") != first.get("generated_at"),
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
