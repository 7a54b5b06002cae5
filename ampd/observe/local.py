"""Read-only probes of this host: generated files, processes, health, remote-write flow."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ampd.core import ProcessState
from ampd.gateways.files import read_bytes, sha256_bytes
from ampd.gateways.http import request, tcp_listening
from ampd.gateways.runtime import Runtime


def observe_files(generated: Path, names: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        data = read_bytes(generated / name)
        out[name] = None if data is None else sha256_bytes(data)
    return out


def observe_processes(runtime: Runtime, names: Iterable[str]) -> dict[str, ProcessState]:
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


def probe_health(name: str, listen: str, timeout: float = 2.0, *, tcp_only: bool = False) -> Probe:
    """GET the process' health URL; ``tcp_only`` for servers that have none (aws-sigv4-proxy
    would sign and forward any path, so only its port is checked)."""
    if tcp_only:
        ok = tcp_listening(listen, timeout)
        return Probe(ok, "accepting connections" if ok else f"not answering on {listen}")
    res = request(f"http://{listen}{HEALTH_PATHS[name]}", timeout=timeout)
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


def scrape(listen: str, path: str = "/metrics") -> str | None:
    res = request(f"http://{listen}{path}", timeout=3.0)
    return res.body if res.status == 200 else None
