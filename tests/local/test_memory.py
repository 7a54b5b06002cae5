"""ampd.gateways.memory: glibc's malloc_trim/mallopt through ctypes (Debian: glibc)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pytest

from ampd.gateways import memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_arenas_can_be_limited() -> None:
    assert memory.limit_arenas(4) is True


def test_a_trim_gives_freed_heap_back() -> None:
    chunks = [bytearray(8192) for _ in range(10_000)]  # ~80 MiB of malloc'd chunks
    keep = bytearray(8192)  # above them: glibc cannot shrink the heap's top by itself
    del chunks
    before = rss_mib()
    assert memory.trim() is True
    after = rss_mib()
    assert after < before - 40, (before, after)
    del keep
