"""Directories for the stand-in executables that tests name in a state file.

ampd runs only a binary that is root's all the way down: owned by root, and neither it nor
any directory above it writable by group or others (ampd.gateways.execcheck). pytest's
``tmp_path`` lies under /tmp (mode 1777), so a stand-in there is refused -- as it should
be. :func:`trusted_dir` gives a fresh directory that passes the check: mode 0755, owned by
root, under ``/var/cache/ampd-test-exec-*`` (/var/cache is root's, 0755, on Debian). The
tree is removed when the test process exits. Nothing in ampd knows about it.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from ampd.gateways.execcheck import untrusted

PARENT = Path("/var/cache")


@functools.cache
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="ampd-test-exec-", dir=PARENT))
    root.chmod(0o755)
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def trusted_dir() -> Path:
    """A new, empty directory from which ampd will run executables."""
    path = Path(tempfile.mkdtemp(dir=_root()))
    path.chmod(0o755)
    why = untrusted(str(path / "x"))
    assert why is None, f"{path} does not pass ampd's executable check: {why}"
    return path
