"""Tell the moment a process exits: one thread polls a pidfd per watched process.

Under systemd ampd's children are not its own: no SIGCHLD, no waitpid. A pidfd
(``pidfd_open(2)``, Linux 5.3) of another user's process needs no ptrace rights and no
/proc (ampd.service runs with ProtectProc=invisible); it becomes readable when that
process exits. ``watch(name, pid)`` replaces what was watched under ``name``; when the
pid exits (or was already gone when it was watched) ``on_exit(name)`` is called, once,
from the watcher thread. ``unwatch`` first when the exit is ampd's own doing.

A pid that exited and was reused between the caller reading it and ``watch`` opening it
would be watched in its stead: that exit is then noticed at the caller's next look.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable

import structlog

__all__ = ["PidWatch"]

log = structlog.get_logger()


class PidWatch:
    def __init__(self, on_exit: Callable[[str], None]) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._watched: dict[str, tuple[int, int]] = {}  # name -> (pid, pidfd)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._closed = False
        self._thread: threading.Thread | None = None

    def watching(self, name: str) -> int | None:
        with self._lock:
            entry = self._watched.get(name)
        return entry[0] if entry is not None else None

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            if self._closed:
                return
            old = self._watched.get(name)
            if old is not None and old[0] == pid:
                return
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:  # gone already: that is an exit
                fd = None
            except OSError as e:  # refused (seccomp, an old kernel): the caller polls
                log.warning("pidwatch.unavailable", process=name, pid=pid, error=str(e))
                return
            if old is not None:
                os.close(old[1])
                del self._watched[name]
            if fd is not None:
                self._watched[name] = (pid, fd)
                self._start()
        if fd is None:
            self._on_exit(name)
        else:
            self._wake()

    def unwatch(self, name: str) -> None:
        with self._lock:
            old = self._watched.pop(name, None)
            if old is not None:
                os.close(old[1])
        self._wake()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for _, fd in self._watched.values():
                os.close(fd)
            self._watched.clear()
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._wake_r)
            os.close(self._wake_w)

    # -- the thread

    def _start(self) -> None:  # under the lock
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ampd-pidwatch", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                fds = {fd: name for name, (_, fd) in self._watched.items()}
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            for fd in fds:
                poller.register(fd, select.POLLIN)
            ready = poller.poll()
            exited: list[str] = []
            with self._lock:
                for fd, _ in ready:
                    if fd == self._wake_r:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 4096)
                        continue
                    name = fds.get(fd)
                    entry = self._watched.get(name) if name is not None else None
                    if name is None or entry is None or entry[1] != fd or not _exited(fd):
                        continue  # unwatched or replaced meanwhile (its fd maybe reused)
                    del self._watched[name]
                    os.close(fd)
                    exited.append(name)
            for name in exited:
                try:
                    self._on_exit(name)
                except Exception as e:  # the watcher outlives a faulty callback
                    log.error("pidwatch.callback_failed", process=name, error=str(e))


def _exited(pidfd: int) -> bool:
    """The pidfd is readable now: its process has exited."""
    return bool(select.select([pidfd], [], [], 0)[0])
