"""Hand the heap a pass freed back to the kernel (glibc ``malloc_trim``).

A pass allocates and frees (YAML, rendered files, HTTP responses); glibc keeps freed
memory in its arenas, so without a trim an idle daemon's RSS stays at its busiest pass.
Where there is no glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def trim() -> bool:
    """True when memory was released to the kernel."""
    libc = _libc()
    try:
        return libc is not None and bool(libc.malloc_trim(0))
    except AttributeError:  # a libc without malloc_trim (musl)
        return False


M_ARENA_MAX = -8


def limit_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas: the daemon's few threads (passes, the AWS worker,
    /metrics) share them instead of each touching a fresh 64 MiB arena. Call before
    starting threads."""
    libc = _libc()
    try:
        return libc is not None and bool(libc.mallopt(M_ARENA_MAX, n))
    except AttributeError:
        return False
