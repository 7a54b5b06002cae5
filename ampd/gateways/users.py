"""Which local user each managed process runs as: one uid per process.

The package creates one system user for the daemon and one per child (sysusers,
``units/ampd.sysusers``); each child unit names its own. Under the supervisor runtime a
root ampd switches each child to its user when that user exists (the package installed
it), and otherwise -- a development checkout, a container without the package, an
unprivileged ampd -- every child runs as ampd's own user, which status reports.

Whoever asks "is this listener ours?" or "whom does the proxy sign for?" asks here, so the
answer always matches the uid the process really runs as.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from ampd.core import PROCESS_USERS

__all__ = [
    "DAEMON_USER",
    "PROCESS_USERS",
    "ProcessUser",
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


def process_user(process: str, runtime: str) -> ProcessUser:
    """The user ``process`` runs as under ``runtime`` ("systemd" or "supervisor").

    systemd: the unit's user, always (a missing user is the package's bug; the unit would
    not start either, and the uid reported is then -1). supervisor: that user if ampd is
    root and the user exists, else ampd's own user.
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
    if runtime == "systemd" or os.geteuid() == 0:
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
