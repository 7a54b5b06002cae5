"""The Grafana binary and its admin API credentials: version probing, the admin password.

``grafana-server -v`` prints ``Version 11.5.2 (commit: ..., branch: ...)``; the single
``grafana`` binary of newer releases answers ``grafana server -v`` (and ``grafana -v``
with ``grafana version 12.0.2``). The version decides which data source Grafana expects
(see ampd.local.render.grafana), so it is read once per binary and cached until the binary file
changes (a package upgrade).
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
from pathlib import Path

from ampd.errors import TemporaryError
from ampd.gateways.execcheck import untrusted
from ampd.gateways.files import FileWriter
from ampd.gateways.http import request

_VERSION_RE = re.compile(r"\b[Vv]ersion\s+v?(\d+)\.(\d+)\.(\d+)")
_cache: dict[tuple[str, int, int], tuple[int, int, int] | None] = {}

ADMIN_USER = "admin"


def _probe(argv: list[str]) -> tuple[int, int, int] | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = _VERSION_RE.search(proc.stdout + proc.stderr)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def grafana_version(binary: str) -> tuple[int, int, int] | None:
    """(11, 5, 2) for the Grafana at ``binary``; None when it is missing or unreadable, or
    when ampd may not run it (not root's all the way down: ampd.gateways.execcheck)."""
    if untrusted(binary) is not None:
        return None
    path = Path(binary)
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _cache:
        found = _probe([binary, "-v"])
        if found is None and path.name == "grafana":
            found = _probe([binary, "server", "-v"])
        _cache[key] = found
    return _cache[key]


def grafana_major(binary: str) -> int | None:
    v = grafana_version(binary)
    return v[0] if v else None


def admin_password_file(state_dir: Path) -> Path:
    """Where ampd keeps the password of the Grafana admin it provisions: readable by ampd
    and the Grafana user only. The directory is group ``ampd-grafana`` (0750; made by
    units/ampd.tmpfiles, or by a root ampd before it starts Grafana as its user:
    ampd.gateways.childuser), the file ampd's, 0640 (Grafana, a member of group ``ampd``,
    reads it). The other children, members of group ``ampd`` too, cannot enter the
    directory, and their units hide it as well. Not under ``secrets/``: that is ampd's
    alone."""
    return state_dir / "grafana-secrets" / "admin-password"


def _legacy_admin_password_file(state_dir: Path) -> Path:
    """Where it was while every child ran as ampd's own user."""
    return state_dir / "secrets" / "grafana-admin-password"


def ensure_admin_password(state_dir: Path, files: FileWriter) -> str:
    """The admin password, made (random) the first time, written through ``files``.
    Grafana reads it through ``admin_password = $__file{...}`` in the generated
    grafana.ini. One left in the old place is moved, not made anew: Grafana's database
    holds it since its first start."""
    path = admin_password_file(state_dir)
    legacy = _legacy_admin_password_file(state_dir)
    files.make_dir(path.parent, 0o750)
    if legacy.exists() and not path.exists():
        files.move(legacy, path, 0o640)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if not text:
        text = secrets.token_urlsafe(24)
        files.write(path, text.encode() + b"\n", 0o640)
    return text


def admin_password(state_dir: Path) -> str | None:
    try:
        return admin_password_file(state_dir).read_text().strip() or None
    except OSError:
        return None


def state_dir_from_argv(argv: tuple[str, ...] | list[str]) -> Path | None:
    """The state directory of a rendered Grafana command (``--config=<state>/generated/
    grafana/grafana.ini``)."""
    for arg in argv:
        if arg.startswith("--config="):
            return Path(arg.removeprefix("--config=")).parents[2]
    return None


def reload_provisioning(
    listen: str, what: str, password: str | None, *, owner: int, timeout: float = 10.0
) -> int:
    """POST /api/admin/provisioning/<what>/reload as the provisioned admin; the HTTP status
    (0 when nothing answered). The admin's Basic auth goes only to a Grafana that runs as
    ``owner`` (ampd.gateways.http): a listener of another user on ``listen`` gets nothing,
    and this raises TemporaryError naming its uid."""
    headers = {}
    if password is not None:
        token = base64.b64encode(f"{ADMIN_USER}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    res = request(
        f"http://{listen}/api/admin/provisioning/{what}/reload",
        "POST",
        timeout,
        b"",
        owner=owner,
        headers=headers,
    )
    if res.foreign_uid is not None:
        raise TemporaryError(f"grafana {what} reload not sent: {res.body}", delay=5)
    return res.status
