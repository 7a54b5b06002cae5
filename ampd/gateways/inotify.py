"""Watch directories with Linux inotify on the running asyncio loop: no thread, no
polling. An idle watcher costs nothing (the loop sleeps in epoll until the kernel has
an event); a change is reported as soon as it happens, plus ``settle`` seconds to
gather the rest of a burst (an editor's write + rename, ``cp -r``).

    async for paths in watch([Path("/etc/ampd")], stop):
        ...  # a set of paths that changed (files, or directories themselves)

Recursive: subdirectories present at the start, and any created later, are watched
too. If the kernel's queue overflows, the set holds the watched directories themselves
(something changed in there; look again).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import struct
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


class InotifyError(OSError):
    pass


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


_libc: _Libc | None = None


def _lib() -> _Libc:
    global _libc  # noqa: PLW0603 - loaded once, on first use
    if _libc is None:
        _libc = _Libc()
    return _libc


def parse_events(buf: bytes) -> list[tuple[int, int, str]]:
    """(wd, mask, name) for each ``struct inotify_event`` in ``buf``."""
    out = []
    offset = 0
    while offset + _EVENT.size <= len(buf):
        wd, mask, _cookie, length = _EVENT.unpack_from(buf, offset)
        offset += _EVENT.size
        name = buf[offset : offset + length].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        offset += length
        out.append((wd, mask, name))
    return out


class Inotify:
    """One inotify instance; ``add(directory)`` watches it (and, with ``recursive``, the
    directories below it)."""

    def __init__(self, *, recursive: bool = True) -> None:
        fd = _lib().init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise InotifyError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        self.recursive = recursive
        self._dirs: dict[int, Path] = {}

    def add(self, directory: Path) -> None:
        wd = _lib().add_watch(self.fd, os.fsencode(directory), MASK)
        if wd < 0:
            err = ctypes.get_errno()
            raise InotifyError(err, f"inotify_add_watch {directory}: {os.strerror(err)}")
        self._dirs[wd] = directory
        if self.recursive:
            try:
                subdirs = [p for p in directory.iterdir() if p.is_dir() and not p.is_symlink()]
            except OSError:
                subdirs = []
            for sub in subdirs:
                self.add(sub)

    @property
    def directories(self) -> list[Path]:
        return sorted(set(self._dirs.values()))

    def read(self) -> set[Path]:
        """Every path with a pending event (empty when there is none)."""
        changed: set[Path] = set()
        while True:
            try:
                buf = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return changed
            for wd, mask, name in parse_events(buf):
                if mask & IN_Q_OVERFLOW:
                    changed.update(self._dirs.values())
                    continue
                base = self._dirs.get(wd)
                if base is None:
                    continue
                if mask & IN_IGNORED:
                    self._dirs.pop(wd, None)
                    continue
                path = base / name if name else base
                changed.add(path)
                if self.recursive and mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                    with contextlib.suppress(InotifyError):  # gone again already
                        self.add(path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


async def watch(
    directories: Iterable[Path],
    stop: asyncio.Event,
    *,
    settle: float = 0.005,
    recursive: bool = True,
) -> AsyncGenerator[set[Path], None]:
    """Yield the paths that changed under ``directories`` until ``stop`` is set."""
    ino = Inotify(recursive=recursive)
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    try:
        for d in directories:
            ino.add(d)
        loop.add_reader(ino.fd, ready.set)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                woke = asyncio.ensure_future(ready.wait())
                await asyncio.wait({woke, stopped}, return_when=asyncio.FIRST_COMPLETED)
                woke.cancel()
                if stop.is_set():
                    return
                ready.clear()
                changed = ino.read()
                if settle > 0:
                    await asyncio.sleep(settle)  # the rest of a burst
                    changed |= ino.read()
                    ready.clear()
                if changed:
                    yield changed
        finally:
            stopped.cancel()
            loop.remove_reader(ino.fd)
    finally:
        ino.close()
