"""A stand-in for ``grafana-server``: enough of its command line and HTTP API for ampd.

    grafana_standin.py -v                          Version 11.5.2 (...)  (GRAFANA_STANDIN_VERSION)
    grafana_standin.py [server] --config=FILE [--homepath=DIR]

It reads the ini as Grafana does (``[server] http_addr/http_port``, ``[paths] data/
provisioning``, ``[security] admin_user/admin_password`` with ``$__file{}`` expansion --
a missing file is fatal, as in Grafana), loads the provisioning files -- interpolating
every string value as Grafana's provisioning does (:func:`interpolate`) -- and checks the
data sources against Grafana's documented format (``sigV4Auth`` must be a boolean, a
SigV4 data source needs ``sigV4AuthType`` and ``sigV4Region``, ...). A bad file at start
is fatal; at reload it answers 400 and keeps the old state.

HTTP (on http_addr:http_port):
    GET  /api/health                                   {"database": "ok", "version": ...}
    POST /api/admin/provisioning/{datasources,dashboards}/reload   Basic auth as the admin
    GET  /api/datasources                              what is loaded (Basic auth)
    GET  /api/search                                   provisioned dashboards (Basic auth)

Every start and reload is appended as a JSON line to ``<data>/standin-events.jsonl``.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

DEFAULT_VERSION = "11.5.2"
_FILE_RE = re.compile(r"\$__file\{([^}]*)\}")
SIGV4_TYPES = {"prometheus", "grafana-amazonprometheus-datasource"}
AUTH_TYPES = {"default", "keys", "credentials", "ec2_iam_role", "grafana_assume_role"}


class ProvisioningError(Exception):
    pass


def expand(value: str) -> str:
    def one(m: re.Match[str]) -> str:
        try:
            return Path(m.group(1)).read_text().strip()
        except OSError as e:
            raise ProvisioningError(f"$__file{{{m.group(1)}}}: {e.strerror}") from None

    return _FILE_RE.sub(one, value)


_PROVIDER_RE = re.compile(r"\$__(\w+)\{([^}]*)\}")
_ENV_RE = re.compile(r"\$(?:\{([^}]*)\}|([A-Za-z0-9_]+)|([*#$@!?\-]))")


def _expand_part(part: str) -> str:
    """One ``$$``-free piece: ``$__env{NAME}``, ``$__file{PATH}`` (Grafana's
    setting.ExpandVar), then ``$NAME``/``${NAME}`` from the environment (Go's
    os.ExpandEnv: an unset name is empty)."""

    def provider(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "env":
            return os.environ.get(arg, "")
        if kind == "file":
            try:
                return Path(arg).read_text().strip()
            except OSError as e:
                raise ProvisioningError(f"$__file{{{arg}}}: {e.strerror}") from None
        raise ProvisioningError(f"$__{kind}{{...}}: no such provider")

    expanded = _PROVIDER_RE.sub(provider, part)

    def env(m: re.Match[str]) -> str:
        return os.environ.get(m.group(1) or m.group(2) or m.group(3), "")

    return _ENV_RE.sub(env, expanded)


def interpolate(value: Any) -> Any:
    """Grafana's provisioning interpolation of every string value (never of keys), after
    pkg/services/provisioning/values: split on ``$$``, expand each piece, join with ``$``."""
    if isinstance(value, str):
        return "$".join(_expand_part(p) for p in value.split("$$"))
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def check_datasource(ds: Any, allowed: set[str]) -> list[str]:
    """Problems of one provisioned data source, per Grafana's provisioning format."""
    if not isinstance(ds, dict):
        return ["a data source is not a mapping"]
    out: list[str] = []
    for key in ("name", "type", "url"):
        if not isinstance(ds.get(key), str) or not ds[key]:
            out.append(f"{key}: required string")
    if ds.get("access", "proxy") not in ("proxy", "direct"):
        out.append("access: proxy or direct")
    for key in ("isDefault", "editable"):
        if key in ds and not isinstance(ds[key], bool):
            out.append(f"{key}: must be a boolean, not {ds[key]!r}")
    jd = ds.get("jsonData", {})
    if not isinstance(jd, dict):
        return [*out, "jsonData: must be a mapping"]
    if "sigV4Auth" in jd:
        if not isinstance(jd["sigV4Auth"], bool):
            out.append(f"jsonData.sigV4Auth: must be a boolean, not {jd['sigV4Auth']!r}")
        elif jd["sigV4Auth"]:
            if ds.get("type") not in SIGV4_TYPES:
                out.append(f"type {ds.get('type')!r} does not sign with SigV4")
            auth = jd.get("sigV4AuthType")
            if auth not in AUTH_TYPES:
                out.append(f"jsonData.sigV4AuthType: unknown {auth!r}")
            elif auth not in allowed:
                out.append(f"sigV4AuthType {auth!r} is not in [aws] allowed_auth_providers")
            if not isinstance(jd.get("sigV4Region"), str) or not jd["sigV4Region"]:
                out.append("jsonData.sigV4Region: required string")
    if ds.get("type") == "grafana-amazonprometheus-datasource" and jd.get("sigV4Auth") is not True:
        out.append("the Amazon Managed Prometheus data source always signs: sigV4Auth: true")
    return out


class Standin:
    def __init__(self, config: Path) -> None:
        ini = configparser.ConfigParser(interpolation=None)
        ini.read(config)
        self.host = ini.get("server", "http_addr", fallback="0.0.0.0")
        self.port = ini.getint("server", "http_port", fallback=3000)
        self.data = Path(ini.get("paths", "data", fallback="/var/lib/grafana"))
        self.provisioning = Path(ini.get("paths", "provisioning", fallback="conf/provisioning"))
        self.admin_user = ini.get("security", "admin_user", fallback="admin")
        self.admin_password = expand(ini.get("security", "admin_password", fallback="admin"))
        self.sigv4 = ini.getboolean("auth", "sigv4_auth_enabled", fallback=False)
        allowed = ini.get("aws", "allowed_auth_providers", fallback="default,keys,credentials")
        self.allowed = {a.strip() for a in allowed.split(",") if a.strip()}
        self.version = os.environ.get("GRAFANA_STANDIN_VERSION", DEFAULT_VERSION)
        self.datasources: list[dict[str, Any]] = []
        self.dashboards: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.data.mkdir(parents=True, exist_ok=True)

    def event(self, **fields: Any) -> None:
        line = json.dumps({"at": time.time(), "pid": os.getpid(), **fields}) + "\n"
        with (self.data / "standin-events.jsonl").open("a") as fh:
            fh.write(line)

    def _yaml_files(self, kind: str) -> list[Any]:
        folder = self.provisioning / kind
        docs = []
        for f in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            try:
                docs.append(interpolate(yaml.safe_load(f.read_text())))
            except yaml.YAMLError as e:
                raise ProvisioningError(f"{f}: {e}") from None
        return docs

    def load_datasources(self) -> None:
        loaded: list[dict[str, Any]] = []
        for doc in self._yaml_files("datasources"):
            if not isinstance(doc, dict) or doc.get("apiVersion") != 1:
                raise ProvisioningError("datasources: apiVersion 1 expected")
            for ds in doc.get("datasources") or []:
                problems = check_datasource(ds, self.allowed)
                if ds.get("jsonData", {}).get("sigV4Auth") is True and not self.sigv4:
                    problems.append("SigV4 data source but [auth] sigv4_auth_enabled is off")
                if problems:
                    raise ProvisioningError(f"data source {ds.get('name')!r}: {problems}")
                loaded.append(ds)
        with self.lock:
            self.datasources = loaded

    def load_dashboards(self) -> None:
        loaded: list[dict[str, Any]] = []
        for doc in self._yaml_files("dashboards"):
            if not isinstance(doc, dict) or doc.get("apiVersion") != 1:
                raise ProvisioningError("dashboards: apiVersion 1 expected")
            for prov in doc.get("providers") or []:
                if prov.get("type", "file") != "file" or "path" not in prov.get("options", {}):
                    raise ProvisioningError(f"dashboard provider {prov.get('name')!r}: bad")
                root = Path(prov["options"]["path"])
                files = [root] if root.is_file() else sorted(root.rglob("*.json"))
                for f in files:
                    try:
                        d = json.loads(f.read_text())
                    except ValueError as e:
                        raise ProvisioningError(f"{f}: {e}") from None
                    loaded.append(
                        {"uid": d.get("uid"), "title": d.get("title"), "folder": prov["folder"]}
                    )
        with self.lock:
            self.dashboards = loaded


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _admin(self) -> bool:
        s = self.server.standin
        want = base64.b64encode(f"{s.admin_user}:{s.admin_password}".encode()).decode()
        if self.headers.get("Authorization") == f"Basic {want}":
            return True
        self._send(401, {"message": "Unauthorized"})
        return False

    def do_GET(self) -> None:
        s = self.server.standin
        if self.path == "/api/health":
            self._send(200, {"database": "ok", "version": s.version, "commit": "standin"})
        elif self.path == "/api/datasources" and self._admin():
            with s.lock:
                self._send(200, s.datasources)
        elif self.path.startswith("/api/search") and self._admin():
            with s.lock:
                self._send(200, s.dashboards)
        elif not self.path.startswith(("/api/datasources", "/api/search")):
            self._send(404, {"message": "Not found"})

    def do_POST(self) -> None:
        s = self.server.standin
        m = re.fullmatch(r"/api/admin/provisioning/(datasources|dashboards)/reload", self.path)
        if m is None:
            self._send(404, {"message": "Not found"})
            return
        if not self._admin():
            s.event(kind="reload", what=m.group(1), ok=False, status=401)
            return
        try:
            s.load_datasources() if m.group(1) == "datasources" else s.load_dashboards()
        except ProvisioningError as e:
            s.event(kind="reload", what=m.group(1), ok=False, status=400, error=str(e))
            self._send(400, {"message": str(e)})
            return
        s.event(kind="reload", what=m.group(1), ok=True, status=200)
        self._send(200, {"message": f"{m.group(1).capitalize()} config reloaded"})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: Standin) -> None:
        self.standin = standin
        super().__init__((standin.host, standin.port), Handler)


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "server"]
    if any(a in ("-v", "--version", "-version") for a in args):
        version = os.environ.get("GRAFANA_STANDIN_VERSION", DEFAULT_VERSION)
        print(f"Version {version} (commit: standin, branch: HEAD)")
        return 0
    config = next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
    if config is None:
        print("grafana stand-in: --config=FILE is required", file=sys.stderr)
        return 2
    try:
        standin = Standin(Path(config))
        standin.load_datasources()
        standin.load_dashboards()
    except (ProvisioningError, OSError, configparser.Error) as e:
        print(f"grafana stand-in: {e}", file=sys.stderr)
        return 1
    server = Server(standin)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    standin.event(
        kind="start",
        listen=f"{standin.host}:{standin.port}",
        datasources=standin.datasources,
        dashboards=standin.dashboards,
    )
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
