"""IMDSv2 client: what this EC2 instance is, or ``None`` everywhere when not on EC2.

Token first (``PUT /latest/api/token``), then GETs with the token header. Timeouts are
short: off EC2 the link-local address does not answer and ampd must not wait on it.
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` moves the endpoint (as it does for botocore).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import structlog

__all__ = ["DEFAULT_ENDPOINT", "InstanceInfo", "fetch_instance_info", "instance_labels", "region"]

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


def _endpoint(endpoint: str | None) -> str:
    base = endpoint or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_ENDPOINT
    return base.rstrip("/")


def _request(req: urllib.request.Request, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (fixed base URL)
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
