"""sd_notify: READY=1, STATUS=, WATCHDOG=1, RELOADING=1.

Our own few lines instead of PyPI sdnotify (which swallows every error): handles abstract
socket names (``@...``), logs failures, and is a no-op without NOTIFY_SOCKET.

Sending never blocks the caller (the daemon's event loop): the socket is non-blocking, and
a datagram the notify socket has no room for (``EAGAIN``, ``ENOBUFS``: systemd busy, or a
listener that stopped reading) is dropped and counted in ``dropped``. Nothing is lost that
matters: WATCHDOG=1 is sent again on the next tick, and the latest STATUS= and an
undelivered READY=1 are carried into the next datagram that goes out (both are
idempotent: systemd keeps the last STATUS and ignores a second READY).
"""

from __future__ import annotations

import errno
import os
import socket
import time

import structlog

__all__ = ["Notifier"]

log = structlog.get_logger()

# Fields that describe a state rather than an event: re-sent until delivered.
_STICKY = ("READY", "STATUS")
# After these, an undelivered READY=1 from before is stale (a reload or a stop began).
_CANCELS_READY = ("RELOADING", "STOPPING")
_FULL = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})


def _name(field: str) -> str:
    return field.partition("=")[0]


class Notifier:
    """``dropped``: datagrams dropped because the socket was full; ``failed``: datagrams
    that could not be sent for another reason (no such socket, refused). Both only grow,
    for the daemon's metrics."""

    def __init__(self, address: str | None = None) -> None:
        addr = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address: str | None = addr or None
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if address is None:
            # like sd_notify(unset_environment=1): children must not inherit the socket
            # (systemd refuses, and logs, notifications from anything but the main pid)
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                os.environ.pop(name, None)
        ours = pid is None or pid == str(os.getpid())
        self.watchdog_interval: float | None = (
            int(usec) / 1_000_000 / 2 if usec and usec.isdigit() and ours else None
        )
        self.dropped = 0
        self.failed = 0
        self._pending: dict[str, str] = {}  # sticky fields not delivered yet, by name
        self._failed_once = False
        self._dropping = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def _target(self) -> str:
        assert self.address is not None
        return "\0" + self.address[1:] if self.address.startswith("@") else self.address

    def _message(self, fields: tuple[str, ...]) -> list[str]:
        names = {_name(f) for f in fields}
        if names & set(_CANCELS_READY):
            self._pending.pop("READY", None)
        carried = [f for n, f in self._pending.items() if n not in names]
        return [*carried, *fields]

    def send(self, *fields: str) -> bool:
        """True when the datagram was delivered; never blocks, never raises."""
        if self.address is None:
            return False
        message = self._message(fields)
        try:
            with socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            ) as sock:
                sock.sendto("\n".join(message).encode(), self._target())
        except OSError as e:
            sticky = {_name(f): f for f in message if _name(f) in _STICKY}
            self._pending = sticky
            if e.errno in _FULL:
                self.dropped += 1
                if not self._dropping:
                    log.warning(
                        "notify.dropped",
                        socket=self.address,
                        error=os.strerror(e.errno or 0),
                        dropped_total=self.dropped,
                    )
                    self._dropping = True
                return False
            self.failed += 1
            if not self._failed_once:
                log.warning("notify.failed", socket=self.address, error=str(e))
                self._failed_once = True
            return False
        self._pending = {}
        if self._dropping:
            log.info("notify.delivering_again", socket=self.address, dropped_total=self.dropped)
            self._dropping = False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, line: str) -> bool:
        return self.send(f"STATUS={line}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1; older ones ignore it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")
