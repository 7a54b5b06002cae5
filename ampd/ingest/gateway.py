"""The ingest side's effects on the outside world, all reads: a bounded dry scrape of a
target, the managed Prometheus' own /metrics (only from a server running as its user),
the listening socket of a local process (its identity), an instant query of the
workspace (SigV4-signed: the fleet's size), and the AWS Price List
(``pricing:GetProducts``, whose endpoint is in us-east-1)."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ampd.engine.facts import PassReads
from ampd.gateways.http import no_proxy_opener, request
from ampd.gateways.listeners import LISTEN, TABLES, connect_address, parse_table, split_hostport
from ampd.gateways.sigv4 import Signer, SigningError

__all__ = [
    "PRICING_REGION",
    "USER_AGENT",
    "Fetched",
    "Queried",
    "WorkspaceQuery",
    "dry_scrape",
    "listener_inode",
    "owned_metrics",
    "price_list",
    "shared_reads",
]

PRICING_REGION = "us-east-1"  # the Price List API answers there for every Region
SCRAPE_TIMEOUT = 3.0
SCRAPE_BYTES = 8 * 1024 * 1024  # a larger exposition is counted up to here
USER_AGENT = "ampd-ingest-estimate"


@dataclass(frozen=True)
class Fetched:
    body: str | None  # None: nothing read
    error: str = ""
    truncated: bool = False


def dry_scrape(url: str, *, timeout: float = SCRAPE_TIMEOUT, cap: int = SCRAPE_BYTES) -> Fetched:
    """The GET Prometheus makes of a target, bounded in time and bytes. A body cut at
    ``cap`` keeps its whole lines only."""
    req = urllib.request.Request(  # noqa: S310 - the scrape URL from the state file
        url,
        headers={
            "Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1",
            "User-Agent": USER_AGENT,  # a target can tell ampd's estimate from a scrape
        },
    )
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.HTTPSHandler(context=ssl.create_default_context())
    ]
    try:
        with no_proxy_opener(*handlers).open(req, timeout=timeout) as resp:
            data = resp.read(cap + 1)
    except urllib.error.HTTPError as e:
        return Fetched(None, f"HTTP {e.code}")
    except urllib.error.URLError as e:
        return Fetched(None, str(e.reason))
    except (OSError, http.client.HTTPException) as e:
        return Fetched(None, str(e) or type(e).__name__)
    truncated = len(data) > cap
    if truncated:
        data = data[:cap].rpartition(b"\n")[0]
    return Fetched(data.decode("utf-8", "replace"), truncated=truncated)


# The pass's shared reads while the ingest side observes (``shared_reads``): the readers
# it is handed (ampd.wiring.make_ingest) know the owner's uid, the side does not.
_READS: ContextVar[PassReads | None] = ContextVar("ampd_ingest_reads", default=None)


@contextlib.contextmanager
def shared_reads(reads: PassReads | None) -> Iterator[None]:
    """Within this block, :func:`owned_metrics` reads through ``reads`` (the pass's
    ``Facts.reads``): a /metrics page already read this pass, by any reader handed the
    same reads, is not read again.
    Scoped: nothing outside the block sees it."""
    token = _READS.set(reads)
    try:
        yield
    finally:
        _READS.reset(token)


def owned_metrics(url: str, owner: int, timeout: float = 3.0) -> Fetched:
    """GET ``url`` only from a server running as ``owner`` (ampd.gateways.http); inside
    :func:`shared_reads`, the pass's one read of it."""
    reads = _READS.get()
    if reads is not None:
        a = reads.get(url, owner)
        status, body = a.status, a.body
    else:
        r = request(url, timeout=timeout, owner=owner)
        status, body = r.status, r.body
    if status != 200:
        return Fetched(None, body[:200] if status == 0 else f"HTTP {status}")
    return Fetched(body)


def price_list(region: str, endpoint_url: str | None, timeout: float = 5.0) -> list[str]:
    """The AmazonPrometheus products of ``region``: the PriceList's JSON documents.
    Raises on any failure (the caller falls back to its cache or the built-in table)."""
    import boto3  # noqa: PLC0415 - only a pass that asks for prices loads boto3's pricing
    from botocore.config import Config  # noqa: PLC0415

    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1})
    # no boto3-stubs for pricing in the dev dependencies: the client is typed Any here
    client: Any = boto3.client(
        "pricing", region_name=PRICING_REGION, endpoint_url=endpoint_url, config=config
    )
    items: list[str] = []
    kwargs: dict[str, Any] = {
        "ServiceCode": "AmazonPrometheus",
        "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}],
        "FormatVersion": "aws_v1",
    }
    for _ in range(20):  # a few pages at most; AmazonPrometheus has a handful of products
        page = client.get_products(**kwargs)
        items.extend(str(x) for x in page.get("PriceList", []))
        token = page.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    return items


def listener_inode(listen: str) -> int | None:
    """The inode of the socket listening on ``listen`` (HOST:PORT), from the kernel's
    tables: a process that restarts listens on a new socket, so a count kept for one
    inode is not taken for its successor's. None when nothing listens there."""
    try:
        host, port = split_hostport(listen)
        target = connect_address(host)
    except (OSError, ValueError):
        return None
    found: int | None = None
    for table in TABLES:
        try:
            text = table.read_text()
        except OSError:
            continue
        for row in parse_table(text):
            if row.state != LISTEN or row.local_port != port or row.inode == 0:
                continue
            local = row.local
            if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
                local = local.ipv4_mapped
            if local == target:
                return row.inode
            if local.is_unspecified:
                found = row.inode
    return found


FLEET_TIMEOUT = 5.0


@dataclass(frozen=True)
class Queried:
    """An instant query's single value (None: no answer, ``error`` says why; ``denied``:
    the workspace refused this host's credentials, e.g. no ``aps:QueryMetrics``)."""

    value: float | None
    error: str = ""
    denied: bool = False


class WorkspaceQuery:
    """Instant PromQL queries of an AMP workspace's query URL, signed with SigV4 (service
    ``aps``, botocore's credential chain -- the instance role on a host -- and the role it
    assumes, ``role_arn``, as Grafana's data source does). Reads only."""

    def __init__(self, timeout: float = FLEET_TIMEOUT) -> None:
        self.timeout = timeout
        self._signers: dict[tuple[str, str | None], Signer] = {}

    def __call__(self, query_url: str, region: str, expr: str, role_arn: str | None) -> Queried:
        key = (region, role_arn)
        signer = self._signers.get(key) or self._signers.setdefault(
            key, Signer(region, "aps", role_arn)
        )
        url = f"{query_url}?query={urllib.parse.quote(expr, safe='')}"
        host = urllib.parse.urlsplit(url).netloc
        try:
            headers = signer.sign("GET", url, {"Host": host, "User-Agent": USER_AGENT}, b"")
        except SigningError as e:
            return Queried(None, str(e))
        req = urllib.request.Request(url, headers=headers)  # noqa: S310 - the workspace's URL
        try:
            with no_proxy_opener().open(req, timeout=self.timeout) as resp:
                doc = json.loads(resp.read(1024 * 1024))
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace").strip()
            return Queried(None, f"HTTP {e.code}: {detail}", denied=e.code == 403)
        except (OSError, http.client.HTTPException, ValueError) as e:
            return Queried(None, str(e) or type(e).__name__)
        return _single_value(doc)


def _single_value(doc: Any) -> Queried:
    """The value of a vector query's one sample; an empty vector is 0."""
    try:
        result = doc["data"]["result"]
        if not result:
            return Queried(0.0)
        return Queried(float(result[0]["value"][1]))
    except (KeyError, IndexError, TypeError, ValueError):
        return Queried(None, "the answer is not a Prometheus vector")
