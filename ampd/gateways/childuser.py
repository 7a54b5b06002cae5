"""What a child needs before a root ampd runs it as its own user (the supervisor runtime).

Under systemd the package and the units arrange it: ``User=`` (its groups, ``ampd`` among
them, from /etc/group: units/ampd.sysusers), ``StateDirectory=`` (the child's data directory
is its own) and ``units/ampd.tmpfiles`` (Grafana's admin password directory). A root ampd
under the supervisor runtime, whose files are root's, does the same by hand before each
start:

- the generated files are group ``ampd``, the group every child is a member of, in
  set-group-ID directories (so a file written later is group ``ampd`` too): the children
  read them, only root writes them;
- the child's data directory (``data/prometheus``, ``data/grafana``) is the child's own;
- Grafana's admin password directory is group ``ampd-grafana``: Grafana gets in, the other
  children do not.

ampd's own files (``ampd.json``, ``secrets/``, ``source/``) stay root's alone (0600/0700).
"""

from __future__ import annotations

import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ampd.errors import TemporaryError
from ampd.gateways import grafana
from ampd.gateways.users import DAEMON_USER, ProcessUser

__all__ = ["Credentials", "prepare"]

# The directory each child writes, under the state directory; the proxy writes nothing.
DATA_DIRS = {"prometheus": "data/prometheus", "grafana": "data/grafana"}


@dataclass(frozen=True)
class Credentials:
    uid: int
    gid: int
    groups: tuple[int, ...]  # supplementary: the user's groups (``ampd`` among them)


def _shared_gid() -> int | None:
    try:
        return grp.getgrnam(DAEMON_USER).gr_gid
    except KeyError:
        return None


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    """Hand ``top`` and everything below it to uid:gid, as systemd's StateDirectory= does
    (and, as it does, only when ``top`` is not theirs already)."""
    st = top.lstat()
    if (st.st_uid, st.st_gid) == (uid, gid):
        return
    os.lchown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(Path(root, name), uid, gid)


def _share_generated(generated: Path, gid: int) -> None:
    generated.mkdir(parents=True, exist_ok=True)
    for top, _dirs, files in os.walk(generated):
        root = Path(top)
        os.chown(root, -1, gid)
        # group ampd reads and enters; set-group-ID: what is written later is ampd's too
        root.chmod((stat.S_IMODE(root.stat().st_mode) | 0o2050) & ~0o002)
        for name in files:
            path = root / name
            if path.is_symlink():
                continue
            os.chown(path, -1, gid)
            path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o040)


def _traversable(state_dir: Path, gid: int) -> None:
    st = state_dir.stat()
    if st.st_mode & 0o001 or (st.st_gid == gid and st.st_mode & 0o010):
        return
    os.chown(state_dir, -1, gid)
    state_dir.chmod(stat.S_IMODE(st.st_mode) | 0o010)


def _grafana_secret(state_dir: Path, gid: int) -> None:
    secret = grafana.admin_password_file(state_dir)
    secret.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.chown(secret.parent, -1, gid)
    secret.parent.chmod(0o750)
    if secret.exists():
        os.chown(secret, -1, gid)
        secret.chmod(0o640)


def prepare(process: str, user: ProcessUser, state_dir: Path) -> Credentials:
    """Make ``state_dir`` ready for ``process`` to run as ``user`` (root only); the
    credentials to start it with. TemporaryError when a file cannot be handed over."""
    try:
        groups = tuple(os.getgrouplist(user.name, user.gid))
        shared = _shared_gid()
        if shared is not None:
            _traversable(state_dir, shared)
            _share_generated(state_dir / "generated", shared)
        data = DATA_DIRS.get(process)
        if data is not None:
            (state_dir / data).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            (state_dir / data).mkdir(mode=0o750, exist_ok=True)
            _chown_tree(state_dir / data, user.uid, user.gid)
            (state_dir / data).chmod(0o750)
        if process == "grafana":
            _grafana_secret(state_dir, user.gid)
    except OSError as e:
        raise TemporaryError(
            f"{process}: cannot hand its files to user {user.name}: {e}", delay=30
        ) from e
    return Credentials(user.uid, user.gid, groups)
