"""Files ampd writes for a remote state outside its own tree: a private scratch directory
for checking fetched files when no state directory is kept (a plan, a validate), and the
hand-over of what ``sudo ampd apply`` wrote to the state directory's owner."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ampd.gateways.files import atomic_write

__all__ = ["give_to_owner_of", "remove_scratch", "scratch_dir", "scratch_write"]


def give_to_owner_of(owner_of: Path, *paths: Path) -> None:
    """Run as root (``sudo ampd apply --once``), hand what was written under the state
    directory to that directory's owner (the ``ampd`` user), so that the daemon can read
    and replace it. Nothing to do for anyone else. OSError when it cannot be done."""
    if os.geteuid() != 0:
        return
    st = owner_of.stat()
    for p in paths:
        try:
            mine = p.lstat()
        except FileNotFoundError:
            continue
        if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
            os.lchown(p, st.st_uid, st.st_gid)


def scratch_write(path: Path, data: bytes) -> None:
    """Write into a scratch directory of :func:`scratch_dir` (private to this process)."""
    atomic_write(path, data, 0o600)


def remove_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def scratch_dir() -> Path:
    """A private temporary directory (for checking fetched files without a state dir)."""
    return Path(tempfile.mkdtemp(prefix="ampd-source-"))
