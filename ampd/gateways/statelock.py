"""One writer at a time in the state directory, across processes: ``flock`` on
``<state_dir>/.lock``.

The daemon holds it for each pass that may write (so ``ampd apply --accept`` can still run
between two passes), and ``ampd apply`` / ``ampd render`` for their whole run. Whoever
waits, waits a bounded time and then refuses, naming the holder's pid and command (the
holder writes them into the file). ``plan`` writes nothing and takes no lock.

- The file is opened with ``O_NOFOLLOW`` (a symlink planted in its place is refused) and
  ``O_CLOEXEC`` (a child the supervisor starts must not inherit the lock). A lock file a
  root-run command creates is handed to the state directory's owner, as ampd's own
  files are.
- Nested holds in one process are one hold: a CLI ``apply`` holds the lock and its pass,
  which would take it again, goes on.
- The kernel drops a flock when its holder dies: a kill -9 leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ampd.errors import AmpdError

__all__ = ["LOCK_NAME", "LockUnavailable", "StateLocked", "hold", "holder"]

LOCK_NAME = ".lock"
POLL = 0.02

_mutex = threading.Lock()
_held: dict[Path, tuple[int, int]] = {}  # lock path -> (fd, depth)


class StateLocked(AmpdError):
    """Another process holds the state directory's lock."""

    def __init__(self, state_dir: Path, who: str, waited: float, hint: str = "") -> None:
        super().__init__(
            f"the state directory {state_dir} is in use by {who or 'another process'}; "
            f"waited {waited:g} s{hint}"
        )
        self.who = who


class LockUnavailable(AmpdError):
    """The lock file cannot be made or opened here (no permission, read-only)."""


def _open(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o640)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AmpdError(f"{path} is a symlink: refusing to lock through it") from None
        raise LockUnavailable(f"cannot open the lock file {path}: {e.strerror}") from None
    st = os.fstat(fd)
    owner = path.parent.stat()
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
        with contextlib.suppress(OSError):  # a root-run command: the file stays ampd's
            os.fchown(fd, owner.st_uid, owner.st_gid)
    return fd


def holder(state_dir: Path) -> str:
    """The holder as "pid N (command)", or "" when the file does not say."""
    try:
        text = (state_dir / LOCK_NAME).read_text().strip()
    except OSError:
        return ""
    pid, _, who = text.partition(" ")
    return f"pid {pid} ({who})" if pid.isdigit() else ""


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def hold(
    state_dir: Path,
    *,
    wait: float,
    who: str,
    on_wait: Callable[[str], None] | None = None,
    hint: str = "",
) -> Iterator[None]:
    """Hold the state directory's lock; wait at most ``wait`` seconds for it, then raise
    StateLocked (its message ends with ``hint``). ``on_wait(holder)`` is called once if
    the lock is busy."""
    try:
        state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as e:
        raise LockUnavailable(
            f"cannot make the state directory {state_dir}: {e.strerror}"
        ) from None
    path = state_dir.resolve() / LOCK_NAME  # one key however the directory is named
    with _mutex:
        nested = _held.get(path)
        if nested is not None:
            _held[path] = (nested[0], nested[1] + 1)
    if nested is not None:
        try:
            yield
        finally:
            with _mutex:
                fd, depth = _held[path]
                _held[path] = (fd, depth - 1)
        return
    fd = _open(path)
    try:
        deadline = time.monotonic() + wait
        told = False
        while not _try(fd):
            if time.monotonic() >= deadline:
                raise StateLocked(state_dir, holder(state_dir), wait, hint)
            if not told and on_wait is not None:
                on_wait(holder(state_dir))
                told = True
            time.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {who}\n".encode(), 0)
        with _mutex:
            _held[path] = (fd, 1)
        try:
            yield
        finally:
            with _mutex:
                del _held[path]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
