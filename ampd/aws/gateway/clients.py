"""One region's boto3 clients (``amp``, ``iam``, ``sts``) with ampd's timeouts and no
botocore retries, and the calls counted per ``(operation, code)`` by every gateway of
this process (``ampd_aws_api_calls_total``)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_amp.client import PrometheusServiceClient
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_sts.client import STSClient

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "Clients",
    "Identity",
    "api_call_counts",
    "count",
    "make_clients",
    "policy_json",
    "reset_api_call_counts",
    "tag_dict",
    "tag_list",
]

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str


_counts: Counter[tuple[str, str]] = Counter()
_counts_lock = threading.Lock()


def api_call_counts() -> dict[tuple[str, str], int]:
    """Calls made so far by every gateway in this process, per (operation, code)."""
    with _counts_lock:
        return dict(_counts)


def reset_api_call_counts() -> None:
    with _counts_lock:
        _counts.clear()


def count(operation: str, code: str) -> None:
    with _counts_lock:
        _counts[(operation, code)] += 1


def policy_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def tag_dict(tags: list[Any] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


@dataclass
class Clients:
    """One region's boto3 clients and who they sign as: shared by the reader and the
    writer of one session (``AwsWriting.writer``), so both make one set of connections."""

    amp: PrometheusServiceClient
    iam: IAMClient
    sts: STSClient
    principal: str | None = None  # the caller's ARN once STS has named it


def make_clients(
    region: str, endpoint_url: str | None = None, session: boto3.session.Session | None = None
) -> Clients:
    # boto3 and botocore are imported on the first AWS pass, not at start-up: they are
    # most of ampd's memory and start-up time, and many hosts never call AWS.
    import boto3  # noqa: PLC0415 (lazy, see above)
    from botocore.config import Config  # noqa: PLC0415 (lazy, see above)

    session = session or boto3.session.Session(region_name=region)
    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra="ampd",
    )
    return Clients(
        amp=session.client("amp", region_name=region, endpoint_url=endpoint_url, config=config),
        iam=session.client("iam", region_name=region, config=config),
        sts=session.client("sts", region_name=region, config=config),
    )
