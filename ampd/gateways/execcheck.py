"""Whether a path named in the state may be executed (or used as a program's home).

ampd runs ``prometheus.binary``, ``grafana.binary``, ``proxy.binary`` and a ``promtool``
beside the Prometheus binary -- as root under ``sudo ampd plan|apply|render`` -- and
passes ``grafana.homepath`` to Grafana. Whoever can replace such a file, or any directory
on the way to it, chooses what runs. So every component of the path must be owned by root
and writable by nobody else: not by its group, not by others (a sticky bit does not help:
anyone may still create a name in /tmp that ampd was told to run).

Symlinks are followed as the kernel follows them: the directory that holds a link has
been checked already, and the link's target is checked from its own start. A path that
does not exist (yet) passes when the part of it that exists passes: only root can create
the rest. Read-only: lstat and readlink.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


class Untrusted(Exception):
    """The path, or a component of it, that fails, and why."""


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _check(component: str, st: os.stat_result) -> None:
    writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if st.st_uid == 0 and not writable:
        return
    mode = f"mode {stat.S_IMODE(st.st_mode):04o}"
    if st.st_uid != 0:
        raise Untrusted(f"{component} is owned by {_owner(st.st_uid)}, {mode}")
    who = "its group and others" if writable == (stat.S_IWGRP | stat.S_IWOTH) else None
    who = who or ("its group" if writable & stat.S_IWGRP else "others")
    raise Untrusted(f"{component} is writable by {who} ({mode}, owned by root)")


def _walk(path: str, links: list[int]) -> Path | None:
    """The real path of ``path`` with every existing component checked; None when a
    component is missing (everything before it checked)."""
    if not path.startswith("/"):
        raise Untrusted(f"{path} is not absolute")
    cur = Path("/")
    _check(str(cur), cur.lstat())
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            cur = cur.parent  # cur is real: no link to climb out of
            continue
        nxt = cur / part
        try:
            st = nxt.lstat()
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            links[0] += 1
            if links[0] > MAX_LINKS:
                raise Untrusted(f"{nxt}: too many levels of symbolic links")
            real = _walk(str(cur / nxt.readlink()), links)  # an absolute target replaces cur
            if real is None:
                return None
            cur = real
            continue
        _check(str(nxt), st)
        cur = nxt
    return cur


def untrusted(path: str) -> str | None:
    """Why ``path`` must not be run by ampd, or None when it may."""
    try:
        _walk(path, [0])
    except Untrusted as e:
        return str(e)
    except OSError as e:  # a name too long, a component that is not a directory, EACCES
        return f"{e.filename or path}: cannot be checked: {e.strerror or e}"
    return None


def require_trusted(path: str) -> None:
    """Raise :class:`Untrusted` unless ampd may run ``path``."""
    why = untrusted(path)
    if why is not None:
        raise Untrusted(why)
