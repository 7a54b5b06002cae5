"""The signing proxy's settings: a small JSON file that ampd renders.

    {"listen": "127.0.0.1:8005", "region": "us-east-1", "service": "aps",
     "upstream": "https://aps-workspaces.us-east-1.amazonaws.com",
     "workspace_id": "ws-abc", "assume_role_arn": null, "allow_non_loopback": false,
     "allowed_uids": null}

``allowed_uids``: the local users whose connections are signed for, as uids or user
names. ampd renders it from the state's ``proxy.allowed_users`` (default: the Prometheus
user, plus the Grafana user when Grafana is on). null (or absent) means the packaged
Prometheus and Grafana users (``ampd.core.PROCESS_USERS``); root is never in a default,
so a root-run forwarder (SSM port forwarding, a host-network container) is refused unless
the state names root. ``"any"`` switches the check off (anything that reaches the listener
gets signatures).

``workspace_id`` null: the workspace is not known yet, and nothing is forwarded (503).

Every problem names the file and the field.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ampd.core import is_loopback_host
from ampd.errors import AmpdError

__all__ = ["ProxyConfig", "ProxyConfigError", "load", "parse"]

_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_SERVICE_RE = re.compile(r"^[a-z0-9-]{1,64}$")
_WORKSPACE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_FIELDS = (
    "listen",
    "region",
    "service",
    "upstream",
    "workspace_id",
    "assume_role_arn",
    "allow_non_loopback",
    "allowed_uids",
)
_REQUIRED = ("listen", "region", "upstream")


class ProxyConfigError(AmpdError):
    """The proxy's settings file cannot be used."""

    def __init__(self, source: str, field: str | None, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        super().__init__(f"{source}: {field}: {message}" if field else f"{source}: {message}")


@dataclass(frozen=True)
class ProxyConfig:
    listen_host: str
    listen_port: int  # 0 picks a free port (tests)
    region: str
    upstream: str  # scheme://host[:port], no path
    service: str = "aps"
    workspace_id: str | None = None
    assume_role_arn: str | None = None
    allow_non_loopback: bool = False
    # uids and user names, None for the defaults, "any" for no check (see the docstring)
    allowed_uids: tuple[int | str, ...] | str | None = None

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    @property
    def upstream_host(self) -> str:
        """host[:port] as sent in the Host header (and signed)."""
        return urlsplit(self.upstream).netloc


def _listen(source: str, value: object, allow_non_loopback: bool) -> tuple[str, int]:
    if not isinstance(value, str):
        raise ProxyConfigError(source, "listen", "must be a string HOST:PORT")
    host, sep, port = value.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ProxyConfigError(
            source, "listen", f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8005)"
        )
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ProxyConfigError(
                source, "listen", f"{host!r} is not an IP address or 'localhost'"
            ) from None
    if not allow_non_loopback and not is_loopback_host(host):
        raise ProxyConfigError(
            source,
            "listen",
            f"{host} is not a loopback address; any process that reaches it can sign "
            "requests as this host's role (set allow_non_loopback: true to accept that)",
        )
    return host, int(port)


def _upstream(source: str, value: object) -> str:
    if not isinstance(value, str):
        raise ProxyConfigError(source, "upstream", "must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProxyConfigError(source, "upstream", f"{value!r} is not an http(s)://HOST[:PORT] URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyConfigError(
            source,
            "upstream",
            f"{value!r} must be scheme://HOST[:PORT] only; request paths are kept as sent",
        )
    if parts.username or parts.password:
        raise ProxyConfigError(source, "upstream", "must not carry user information")
    try:
        parts.port  # noqa: B018 -- raises on a malformed port
    except ValueError as e:
        raise ProxyConfigError(source, "upstream", str(e)) from None
    return f"{parts.scheme}://{parts.netloc}"


def _optional_str(source: str, data: Mapping[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProxyConfigError(source, name, "must be a string or null")
    return value


def _allowed_uids(source: str, value: object) -> tuple[int | str, ...] | str | None:
    if value is None or value == "any":
        return value
    if not isinstance(value, list):
        raise ProxyConfigError(
            source, "allowed_uids", 'must be a list of uids and user names, null or "any"'
        )
    out: list[int | str] = []
    for item in value:
        uid = isinstance(item, int) and not isinstance(item, bool) and 0 <= item < 2**32 - 1
        name = isinstance(item, str) and _USER_RE.match(item) is not None
        if not (uid or name):
            raise ProxyConfigError(source, "allowed_uids", f"{item!r} is not a uid or a user name")
        out.append(item)
    return tuple(out)


def parse(data: object, source: str = "<proxy config>") -> ProxyConfig:
    """Validate an already-decoded settings document."""
    if not isinstance(data, Mapping):
        raise ProxyConfigError(source, None, "must be a JSON object")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ProxyConfigError(source, unknown[0], f"unknown field (known: {', '.join(_FIELDS)})")
    for name in _REQUIRED:
        if data.get(name) is None:
            raise ProxyConfigError(source, name, "is required")

    allow = data.get("allow_non_loopback", False)
    if not isinstance(allow, bool):
        raise ProxyConfigError(source, "allow_non_loopback", "must be true or false")
    host, port = _listen(source, data["listen"], allow)

    region = data["region"]
    if not isinstance(region, str) or not _REGION_RE.match(region):
        raise ProxyConfigError(source, "region", f"{region!r} is not an AWS region")
    service = data.get("service", "aps")
    if not isinstance(service, str) or not _SERVICE_RE.match(service):
        raise ProxyConfigError(source, "service", f"{service!r} is not a service name")
    workspace_id = _optional_str(source, data, "workspace_id")
    if workspace_id is not None and not _WORKSPACE_RE.match(workspace_id):
        raise ProxyConfigError(source, "workspace_id", f"{workspace_id!r} is not a workspace id")
    role = _optional_str(source, data, "assume_role_arn")
    if role is not None and not _ARN_RE.match(role):
        raise ProxyConfigError(source, "assume_role_arn", f"{role!r} is not an IAM role ARN")

    return ProxyConfig(
        listen_host=host,
        listen_port=port,
        region=region,
        upstream=_upstream(source, data["upstream"]),
        service=service,
        workspace_id=workspace_id,
        assume_role_arn=role,
        allow_non_loopback=allow,
        allowed_uids=_allowed_uids(source, data.get("allowed_uids")),
    )


def load(path: Path) -> ProxyConfig:
    """Read and validate the settings file; ProxyConfigError names the file and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProxyConfigError(str(path), None, f"cannot read: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProxyConfigError(
            str(path), None, f"line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    return parse(data, str(path))
