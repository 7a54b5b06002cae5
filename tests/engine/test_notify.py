"""gateways/notify.py against real AF_UNIX datagram sockets bound by the test: a
filesystem path and an abstract (@name) socket, as systemd hands out both."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ampd.gateways.notify import Notifier


class Listener:
    """A bound datagram socket standing in for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET would spell it
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(2.0)  # a bound on a failing test, never a wait on a passing one

    def messages(self) -> list[list[str]]:
        out: list[list[str]] = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            return out
        finally:
            self.sock.settimeout(2.0)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="ampd-n-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[Listener]:
    if request.param == "path":
        address = str(short_dir / "notify")
    else:
        address = f"@ampd-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    lst = Listener(address)
    yield lst
    lst.close()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(lambda n: n.ready(), ["READY=1"], id="ready"),
        pytest.param(
            lambda n: n.ready("Synced · Healthy"),
            ["READY=1", "STATUS=Synced · Healthy"],
            id="ready-with-status",
        ),
        pytest.param(
            lambda n: n.status("OutOfSync · Degraded · ws-1"),
            ["STATUS=OutOfSync · Degraded · ws-1"],
            id="status",
        ),
        pytest.param(lambda n: n.watchdog(), ["WATCHDOG=1"], id="watchdog"),
        pytest.param(lambda n: n.stopping(), ["STOPPING=1"], id="stopping"),
        pytest.param(lambda n: n.send("A=1", "B=2"), ["A=1", "B=2"], id="several-fields"),
    ],
)
def test_messages(
    listener: Listener, call: Callable[[Notifier], bool], expected: list[str]
) -> None:
    notifier = Notifier(listener.address)
    assert notifier.enabled
    assert call(notifier) is True
    assert listener.messages() == [expected]


def test_reloading_carries_monotonic_usec(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    [[first, second]] = listener.messages()
    assert first == "RELOADING=1"
    name, _, value = second.partition("=")
    assert name == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_address_from_environment(listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.address)
    notifier = Notifier()
    assert notifier.address == listener.address
    assert notifier.ready() is True
    assert notifier.watchdog() is True
    assert listener.messages() == [["READY=1"], ["WATCHDOG=1"]]


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_no_op_without_notify_socket(value: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if value is not None:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    notifier = Notifier()
    assert notifier.enabled is False
    with capture_logs() as logs:
        assert notifier.ready("x") is False
        assert notifier.status("x") is False
        assert notifier.watchdog() is False
        assert notifier.reloading() is False
        assert notifier.stopping() is False
    assert logs == []


@pytest.mark.parametrize(
    ("usec", "pid", "interval"),
    [
        pytest.param(None, None, None, id="no-watchdog"),
        pytest.param("30000000", None, 15.0, id="half-of-usec"),
        pytest.param("1000000", "self", 0.5, id="our-pid"),
        pytest.param("30000000", "other", None, id="another-pid"),
        pytest.param("soon", None, None, id="not-a-number"),
        pytest.param("-5", None, None, id="negative"),
    ],
)
def test_watchdog_interval(
    usec: str | None, pid: str | None, interval: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid == "self":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    elif pid == "other":
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier("@unused").watchdog_interval == interval


def test_missing_socket_warns_once_and_does_not_raise(short_dir: Path) -> None:
    missing = str(short_dir / "gone")
    notifier = Notifier(missing)
    with capture_logs() as logs:
        assert notifier.ready() is False
        assert notifier.status("x") is False
        assert notifier.watchdog() is False
    assert len(logs) == 1
    [entry] = logs
    assert entry["log_level"] == "warning"
    assert entry["event"] == "notify.failed"
    assert entry["socket"] == missing
    assert "No such file" in entry["error"]


def test_abstract_socket_nobody_listens_on(short_dir: Path) -> None:
    notifier = Notifier(f"@ampd-nobody-{uuid.uuid4().hex}")
    with capture_logs() as logs:
        assert notifier.watchdog() is False
    assert [e["event"] for e in logs] == ["notify.failed"]


def test_listener_gone_after_start(short_dir: Path) -> None:
    lst = Listener(str(short_dir / "notify"))
    notifier = Notifier(lst.address)
    assert notifier.ready() is True
    lst.close()
    Path(lst.address).unlink()
    with capture_logs() as logs:
        assert notifier.watchdog() is False
    assert len(logs) == 1


# -- a notify socket that stops draining (#17) ---------------------------------------


def _fill(listener: Listener) -> int:
    """Queue datagrams on the listener until the kernel refuses one; nobody reads them."""
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    target = "\0" + listener.address[1:] if listener.address.startswith("@") else listener.address
    queued = 0
    try:
        while queued < 100_000:
            try:
                filler.sendto(b"FILLER=1", target)
            except BlockingIOError:
                return queued
            queued += 1
    finally:
        filler.close()
    raise AssertionError("the notify socket never filled up")


def test_a_full_socket_drops_and_counts_without_blocking(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    queued = _fill(listener)
    assert queued > 0
    with capture_logs() as logs:
        started = time.monotonic()
        assert notifier.watchdog() is False
        assert notifier.status("Synced · Healthy") is False
        assert notifier.watchdog() is False
        took = time.monotonic() - started
    # A blocking send would never return here (nobody reads); a non-blocking one takes µs.
    assert took < 1.0
    assert (notifier.dropped, notifier.failed) == (3, 0)
    # one warning for the whole streak, not one per datagram
    assert [(e["event"], e["log_level"]) for e in logs] == [("notify.dropped", "warning")]
    assert logs[0]["socket"] == listener.address

    assert len(listener.messages()) == queued  # systemd catches up
    with capture_logs() as logs:
        assert notifier.watchdog() is True
    # the last STATUS that was dropped rides along with the next datagram that goes out
    assert listener.messages() == [["STATUS=Synced · Healthy", "WATCHDOG=1"]]
    assert [e["event"] for e in logs] == ["notify.delivering_again"]
    assert notifier.watchdog() is True
    assert listener.messages() == [["WATCHDOG=1"]]  # delivered once, not forever
    assert notifier.dropped == 3


def test_a_dropped_ready_is_delivered_with_the_next_datagram(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    _fill(listener)
    assert notifier.ready("Unknown · starting") is False
    assert notifier.status("Synced · Healthy") is False
    listener.messages()
    assert notifier.watchdog() is True
    assert listener.messages() == [["READY=1", "STATUS=Synced · Healthy", "WATCHDOG=1"]]
    assert notifier.dropped == 2


def test_a_reload_or_stop_cancels_an_undelivered_ready(listener: Listener) -> None:
    notifier = Notifier(listener.address)
    _fill(listener)
    assert notifier.ready("starting") is False
    listener.messages()
    assert notifier.stopping() is True
    # READY=1 after STOPPING=1 would be a lie; the STATUS line is still the latest one
    assert listener.messages() == [["STATUS=starting", "STOPPING=1"]]
