"""Read-only probes of this host: generated files, processes, health, remote-write flow."""

from __future__ import annotations

import pwd
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ampd.core import ProcessState
from ampd.engine.facts import PassReads
from ampd.gateways.files import read_bytes, sha256_bytes
from ampd.gateways.http import request, tcp_check
from ampd.gateways.listeners import listener_owner, split_hostport
from ampd.gateways.runtime import RuntimeView
from ampd.gateways.users import ProcessUser
from ampd.local.report.owners import Squat

__all__ = [
    "HEALTH_PATHS",
    "Probe",
    "Squat",
    "find_squatters",
    "observe_files",
    "observe_processes",
    "parse_labeled",
    "parse_metrics",
    "probe_health",
    "scrape",
    "squat",
]


def observe_files(generated: Path, names: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        data = read_bytes(generated / name)
        out[name] = None if data is None else sha256_bytes(data)
    return out


def observe_processes(runtime: RuntimeView, names: Iterable[str]) -> dict[str, ProcessState]:
    return {name: runtime.observe(name) for name in names}


HEALTH_PATHS: Mapping[str, str] = {
    "prometheus": "/-/ready",
    "sigv4-proxy": "/healthz",
    "grafana": "/api/health",
}


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str
    foreign_uid: int | None = None  # the port is held by this uid, not the process' own


def probe_health(
    name: str, listen: str, timeout: float = 2.0, *, tcp_only: bool = False, owner: int | None
) -> Probe:
    """GET the process' health URL; ``tcp_only`` for servers that have none (aws-sigv4-proxy
    would sign and forward any path, so only its port is checked). ``owner``: the uid the
    process runs as; a listener of any other user is not believed (ampd.gateways.http)."""
    if tcp_only:
        tcp = tcp_check(listen, timeout, owner=owner)
        if tcp.foreign_uid is not None:
            return Probe(False, tcp.detail, tcp.foreign_uid)
        return Probe(tcp.ok, "accepting connections" if tcp.ok else f"not answering on {listen}")
    res = request(f"http://{listen}{HEALTH_PATHS[name]}", timeout=timeout, owner=owner)
    if res.foreign_uid is not None:
        return Probe(False, res.body, res.foreign_uid)
    if res.status == 200:
        return Probe(True, "ready")
    if res.status == 0:
        return Probe(False, f"not answering on {listen}: {res.body}")
    return Probe(False, f"{HEALTH_PATHS[name]} answered {res.status}: {res.body.strip()[:200]}")


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEInfNa]+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Sum each metric family over its labels (enough for remote-write evidence)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if m:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                continue
    return out


def parse_labeled(text: str, family: str) -> dict[str, float]:
    """The samples of one family keyed by their label text, e.g. '{code="403",...}'."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE_RE.match(line)
        if m and m.group(1) == family:
            out[m.group(2) or ""] = float(m.group(3))
    return out


def scrape(
    listen: str, path: str = "/metrics", *, owner: int | None, reads: PassReads | None = None
) -> str | None:
    """The body of a 200 from a server that runs as ``owner``; None otherwise. With
    ``reads`` (and an owner), the pass's shared read: one GET per pass and URL."""
    url = f"http://{listen}{path}"
    if reads is not None and owner is not None:
        answer = reads.get(url, owner)
        return answer.body if answer.status == 200 else None
    res = request(url, timeout=3.0, owner=owner)
    return res.body if res.status == 200 else None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def squat(process: str, listen: str, uid: int, expected: ProcessUser) -> Squat:
    return Squat(process, listen, uid, _user_name(uid), expected.uid, expected.name)


def find_squatters(
    listens: Mapping[str, str], owners: Mapping[str, ProcessUser]
) -> dict[str, Squat]:
    """The ports (of ``listens``) held by a user other than their process' own, whether the
    process runs or not (a squatter that took the port first keeps it from starting)."""
    out: dict[str, Squat] = {}
    for name, listen in listens.items():
        expected = owners.get(name)
        if expected is None:
            continue
        try:
            host, port = split_hostport(listen)
            held = listener_owner(host, port)
        except (OSError, ValueError):
            continue
        if held is not None and held != expected.uid:
            out[name] = squat(name, listen, held, expected)
    return out
