"""sd_notify: READY=1, STATUS=, WATCHDOG=1, RELOADING=1.

Our own few lines instead of PyPI sdnotify (which swallows every error): handles abstract
socket names (``@...``), logs failures, and is a no-op without NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger()


class Notifier:
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
        self._failed_once = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(target)
                sock.sendall("\n".join(fields).encode())
        except OSError as e:
            if not self._failed_once:
                log.warning("notify.failed", socket=self.address, error=str(e))
                self._failed_once = True
            return False
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
