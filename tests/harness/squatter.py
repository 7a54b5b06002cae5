"""A local user who takes a loopback port first: a forked child that drops to ``nobody``,
binds HOST:PORT and answers every request with ``200 ok`` (it would look healthy), while
the parent keeps every byte it received.

Forked, not executed: ``nobody`` cannot reach the test interpreter under /root. The child
uses only ``os`` and ``socket`` and leaves with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import struct
import threading
import time
from typing import Self

NOBODY = pwd.getpwnam("nobody")
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)


def _serve(host: str, port: int, out: int, bind_for: float) -> None:  # the child
    os.setgroups([])
    os.setgid(NOBODY.pw_gid)
    os.setuid(NOBODY.pw_uid)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + bind_for
    while True:  # a restart window: take the port the moment it is free
        try:
            srv.bind((host, port))
            break
        except OSError:
            if time.monotonic() >= deadline:
                os.write(out, struct.pack("!I", 0))
                os._exit(1)
    srv.listen(64)
    os.write(out, struct.pack("!I", 1) + b"B")
    while True:
        conn, _ = srv.accept()
        conn.settimeout(1.0)
        got = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in got:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got += chunk
        # Record the connection even when it carried nothing.
        os.write(out, struct.pack("!I", len(got) + 1) + b"C" + got)
        with contextlib.suppress(OSError):
            conn.sendall(ANSWER)
        conn.close()


class Squatter:
    """``with Squatter("127.0.0.1", port) as s: ...``; ``s.received`` is every request's
    bytes (b"" for a connection that sent nothing), ``s.connections`` their count."""

    uid = NOBODY.pw_uid

    def __init__(self, host: str, port: int, *, bind_for: float = 10.0) -> None:
        self.host, self.port, self.bind_for = host, port, bind_for
        self.received: list[bytes] = []
        self._pid = 0
        self._read = -1
        self._bound = threading.Event()
        self._failed = False
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(r)
                _serve(self.host, self.port, w, self.bind_for)
            finally:
                os._exit(2)
        os.close(w)
        self._pid, self._read = pid, r
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()
        return self

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = os.read(self._read, n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _collect(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                (n,) = struct.unpack("!I", self._exact(4))
                if n == 0:
                    self._failed = True
                    self._bound.set()
                    return
                msg = self._exact(n)
                if msg[:1] == b"B":
                    self._bound.set()
                else:
                    self.received.append(msg[1:])

    def wait_bound(self, timeout: float) -> None:
        if not self._bound.wait(timeout) or self._failed:
            raise AssertionError(f"the squatter could not bind {self.host}:{self.port}")

    @property
    def connections(self) -> int:
        return len(self.received)

    def stop(self) -> None:
        if self._pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid = 0
        if self._thread is not None:
            self._thread.join(5)
        if self._read >= 0:
            with contextlib.suppress(OSError):
                os.close(self._read)
            self._read = -1

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
