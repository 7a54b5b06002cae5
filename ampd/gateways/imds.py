"""IMDSv2 client: what this EC2 instance is, or ``None`` everywhere when not on EC2.

Token first (``PUT /latest/api/token``), then GETs with the token header. Timeouts are
short: off EC2 the link-local address does not answer and ampd must not wait on it.
``*_proxy`` variables are ignored: a proxy would see the token and the instance's identity.
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` moves the endpoint (as it does for botocore).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import MutableMapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

from ampd.gateways.http import no_proxy_opener

__all__ = [
    "DEFAULT_ENDPOINT",
    "InstanceInfo",
    "fetch_instance_info",
    "instance_labels",
    "keep_off_proxies",
    "region",
]

log = structlog.get_logger()

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600
TIMEOUT = 1.0


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str | None = None
    region: str | None = None
    availability_zone: str | None = None
    instance_type: str | None = None
    account_id: str | None = None
    image_id: str | None = None

    @property
    def on_ec2(self) -> bool:
        return self.instance_id is not None


# Never through a proxy: instance metadata (IPv4 and IPv6) and this host's loopback.
NO_PROXY_HOSTS = ("169.254.169.254", "fd00:ec2::254", "127.0.0.1", "localhost", "::1")
_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def keep_off_proxies(environ: MutableMapping[str, str] = os.environ) -> None:
    """Add instance metadata and loopback to ``no_proxy``/``NO_PROXY`` when a proxy is set.

    botocore's own IMDS client (it fetches the instance role's credentials) takes its
    proxies from the environment, and honours ``no_proxy``; ampd's own requests ignore
    ``*_proxy`` anyway (ampd.gateways.http). A moved endpoint
    (``AWS_EC2_METADATA_SERVICE_ENDPOINT``) is kept off proxies too."""
    if not any(environ.get(v) for v in _PROXY_VARS):
        return
    hosts = list(NO_PROXY_HOSTS)
    moved = urlsplit(environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "")).hostname
    if moved:
        hosts.append(moved)
    for var in ("no_proxy", "NO_PROXY"):
        current = [h.strip() for h in environ.get(var, "").split(",") if h.strip()]
        environ[var] = ",".join(current + [h for h in hosts if h not in current])


def _endpoint(endpoint: str | None) -> str:
    base = endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_ENDPOINT
    return base.rstrip("/")


def _request(req: urllib.request.Request, timeout: float) -> str | None:
    try:
        with no_proxy_opener().open(req, timeout=timeout) as resp:
            return str(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _token(base: str, timeout: float) -> str | None:
    req = urllib.request.Request(  # noqa: S310 (http base URL from config, not user input)
        f"{base}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
    )
    return _request(req, timeout)


def _get(base: str, token: str, path: str, timeout: float) -> str | None:
    req = urllib.request.Request(  # noqa: S310 (http base URL from config, not user input)
        f"{base}/latest/{path}", headers={"X-aws-ec2-metadata-token": token}
    )
    return _request(req, timeout)


def fetch_instance_info(endpoint: str | None = None, timeout: float = TIMEOUT) -> InstanceInfo:
    """Everything ampd wants from IMDS in one go; all ``None`` when there is no IMDS."""
    base = _endpoint(endpoint)
    token = _token(base, timeout)
    if token is None:
        log.debug("imds.unavailable", endpoint=base)
        return InstanceInfo()
    doc: dict[str, object] = {}
    raw = _get(base, token, "dynamic/instance-identity/document", timeout)
    if raw:
        try:
            doc = dict(json.loads(raw))
        except ValueError:
            doc = {}

    def pick(key: str, path: str) -> str | None:
        value = doc.get(key)
        if isinstance(value, str) and value:
            return value
        return _get(base, token, path, timeout)

    account = doc.get("accountId")
    return InstanceInfo(
        instance_id=pick("instanceId", "meta-data/instance-id"),
        region=pick("region", "meta-data/placement/region"),
        availability_zone=pick("availabilityZone", "meta-data/placement/availability-zone"),
        instance_type=pick("instanceType", "meta-data/instance-type"),
        account_id=account if isinstance(account, str) else None,
        image_id=pick("imageId", "meta-data/ami-id"),
    )


def region(endpoint: str | None = None, timeout: float = TIMEOUT) -> str | None:
    """This instance's region, or None off EC2."""
    return fetch_instance_info(endpoint, timeout).region


def instance_labels(endpoint: str | None = None, timeout: float = TIMEOUT) -> dict[str, str] | None:
    """Labels for Prometheus' external_labels (keys as in ``prometheus.instance_labels``),
    or None off EC2."""
    info = fetch_instance_info(endpoint, timeout)
    if not info.on_ec2:
        return None
    values = {
        "instance_id": info.instance_id,
        "availability_zone": info.availability_zone,
        "instance_type": info.instance_type,
        "region": info.region,
        "account_id": info.account_id,
        "image_id": info.image_id,
    }
    return {k: v for k, v in values.items() if v}
