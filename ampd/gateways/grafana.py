"""The Grafana binary and its admin API credentials: version probing, the admin password.

``grafana-server -v`` prints ``Version 11.5.2 (commit: ..., branch: ...)``; the single
``grafana`` binary of newer releases answers ``grafana server -v`` (and ``grafana -v``
with ``grafana version 12.0.2``). The version decides which data source Grafana expects
(see ampd.render.grafana), so it is read once per binary and cached until the binary file
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
from ampd.gateways.files import atomic_write
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
    """Where ampd keeps the password of the Grafana admin it provisions (mode 0600)."""
    return state_dir / "secrets" / "grafana-admin-password"


def ensure_admin_password(state_dir: Path) -> str:
    """The admin password, made (random, 0600) the first time. Grafana reads it through
    ``admin_password = $__file{...}`` in the generated grafana.ini."""
    path = admin_password_file(state_dir)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if not text:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = secrets.token_urlsafe(24)
        atomic_write(path, text.encode() + b"\n", 0o600)
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
