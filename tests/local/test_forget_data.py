"""The supervisor runtime's forget_data: the child stopped, then its data directory gone;
a directory it cannot remove raises, naming what is left.

The systemd runtime's (stop, then ``systemctl clean --what=state``) is tested with a fake
systemctl in tests/local/test_systemd_runtime.py and under a real systemd in
tests/system/test_instance_data_box.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ampd.errors import TemporaryError
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Command
from ampd.gateways.supervisor import Supervisor

NOBODY = 65534


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "lib", tmp_path / "run")


def test_forget_data_stops_the_child_then_removes_its_directory(paths: Paths) -> None:
    wal = paths.data_dir("prometheus") / "wal"
    wal.mkdir(parents=True)
    (wal / "00000001").write_bytes(b"samples")
    other = paths.data_dir("grafana")
    other.mkdir()
    sup = Supervisor(paths=paths)
    sup.start(Command("prometheus", ("/bin/sleep", "600")))
    pid = sup.observe("prometheus").pid
    assert pid is not None
    try:
        sup.forget_data("prometheus")
        assert not sup.observe("prometheus").running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert not paths.data_dir("prometheus").exists()
        assert other.exists()  # only its own
        sup.forget_data("prometheus")  # gone already: nothing to do
    finally:
        sup.shutdown()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="ampd-forget-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_data_it_may_not_remove_raises_naming_it(open_dir: Path) -> None:
    """Tests run as root; the daemon here acts as another user (effective uid)."""
    paths = Paths(open_dir / "lib", open_dir / "run")
    wal = paths.data_dir("prometheus") / "wal"
    wal.mkdir(parents=True)
    (wal / "00000001").write_bytes(b"samples")
    for d in (open_dir / "lib", open_dir / "lib" / "data", paths.data_dir("prometheus"), wal):
        d.chmod(0o755)
    sup = Supervisor(paths=paths)
    os.seteuid(NOBODY)  # as a daemon that does not own the child's files
    try:
        with pytest.raises(TemporaryError) as raised:
            sup.forget_data("prometheus")
    finally:
        os.seteuid(0)
    assert "Permission denied" in str(raised.value)
    assert str(wal) in str(raised.value)
    assert (wal / "00000001").exists()
