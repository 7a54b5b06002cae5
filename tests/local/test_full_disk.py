"""A full disk: writing a generated file fails with a clear, retryable error naming the
file, and the file that was there stays whole (a real, tiny tmpfs fills up)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ampd.errors import TemporaryError
from ampd.gateways.files import atomic_write


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_keeps_the_old_file(tiny_fs: Path) -> None:
    target = tiny_fs / "prometheus.yml"
    atomic_write(target, b"old: config\n")
    (tiny_fs / "filler").write_bytes(b"x" * (64 * 1024 - 8 * 1024))  # most of the space
    with pytest.raises(TemporaryError) as err:
        atomic_write(target, b"new: config\n" * 4096)  # ~48 KiB: does not fit
    assert str(target) in str(err.value)
    assert "No space left on device" in str(err.value)
    assert target.read_bytes() == b"old: config\n"
    assert [p.name for p in tiny_fs.iterdir() if p.name.endswith(".tmp")] == []
