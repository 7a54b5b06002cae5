"""Which local user each managed process runs as: one uid per process.

The package creates one system user for the daemon and one per child (sysusers,
``units/ampd.sysusers``); each child unit names its own. Under the supervisor runtime a
root ampd switches each child to its user when that user exists (the package installed
it) and can reach the state directory, and otherwise -- a development checkout, a
container without the package, a state directory under root's own private directories,
an unprivileged ampd -- every child runs as ampd's own user.

Whoever asks "is this listener ours?" or "whom does the proxy sign for?" asks here, so the
answer always matches the uid the process really runs as.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ampd.core import PROCESS_USERS
from ampd.gateways.paths import resolve_paths

__all__ = [
    "DAEMON_USER",
    "PROCESS_USERS",
    "ProcessUser",
    "can_enter_below",
    "process_user",
    "process_users",
    "shared_uid",
    "user_names",
]

DAEMON_USER = "ampd"


@dataclass(frozen=True)
class ProcessUser:
    name: str  # the user name (what the proxy's allowed_users lists)
    uid: int
    gid: int
    own: bool  # True: the process's own user; False: it shares ampd's (no such user here)


def _self() -> ProcessUser:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return ProcessUser(name, uid, os.getegid(), own=False)


def can_enter_below(path: Path, uid: int, gids: Collection[int]) -> bool:
    """Whether a process of ``uid`` (groups ``gids``) may pass through every directory
    above ``path`` (search permission, as the kernel checks it for a non-root user)."""
    for d in reversed(path.absolute().parents):
        try:
            st = d.stat()
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _groups(entry: pwd.struct_passwd) -> set[int]:
    return {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}


def process_user(process: str, runtime: str) -> ProcessUser:
    """The user ``process`` runs as under ``runtime`` ("systemd" or "supervisor").

    systemd: the unit's user, always (a missing user is the package's bug; the unit would
    not start either, and the uid reported is then -1). supervisor: that user if ampd is
    root, the user exists and can reach the state directory (where its configuration is
    generated: a state directory under root's private /tmp/x or /root cannot be handed to
    it), else ampd's own user.
    """
    name = PROCESS_USERS.get(process)
    if name is None:
        return _self()
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if runtime == "systemd":
            return ProcessUser(name, -1, -1, own=True)
        return _self()
    if runtime == "systemd":
        return ProcessUser(name, entry.pw_uid, entry.pw_gid, own=True)
    reachable = can_enter_below(resolve_paths().state_dir, entry.pw_uid, _groups(entry))
    if os.geteuid() == 0 and reachable:
        return ProcessUser(name, entry.pw_uid, entry.pw_gid, own=True)
    return _self()


def process_users(runtime: str) -> dict[str, ProcessUser]:
    return {p: process_user(p, runtime) for p in PROCESS_USERS}


def user_names(runtime: str) -> dict[str, str]:
    """process -> the name of the user it runs as (what rendering needs)."""
    return {p: u.name for p, u in process_users(runtime).items()}


def shared_uid(runtime: str) -> list[str]:
    """The managed processes that would share ampd's own uid (none on a packaged host)."""
    return [p for p, u in process_users(runtime).items() if not u.own]
