"""Which requests the proxy forwards, where, and with which headers (pure functions)."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["client_headers", "path_kind", "refusal", "response_headers", "upstream_url"]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded from the client: the destination and the credentials are the proxy's.
_CLIENT_DROP = _HOP_BY_HOP | {
    "host",
    "content-length",
    "authorization",
    "cookie",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
}
_QUERY_ENDPOINTS = frozenset(
    {"query", "query_range", "query_exemplars", "series", "labels", "metadata"}
)


def path_kind(path: str) -> str:
    """A low-cardinality label for a request path: remote_write, query, alertmanager,
    rules or other."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "workspaces":
        return "other"
    rest = parts[2:]
    if rest[:2] == ["api", "v1"] and len(rest) >= 3:
        if rest[2] == "remote_write":
            return "remote_write"
        if rest[2] in _QUERY_ENDPOINTS or (rest[2] == "label" and rest[-1] == "values"):
            return "query"
        if rest[2] in ("rules", "alerts"):
            return "rules"
    if rest[0] == "alertmanager":
        return "alertmanager"
    return "other"


def refusal(path: str, workspace_id: str | None) -> str | None:
    """Why ``path`` is not forwarded, or None: dot segments never are, and only
    ``/workspaces/<id>/...``; nothing while no workspace id is known."""
    if not workspace_id:
        return "no workspace id is known yet, so nothing is forwarded"
    segments = path.split("/")
    if any(s in (".", "..") for s in segments):
        return "dot segments are not allowed in paths"
    prefix = f"/workspaces/{workspace_id}/"
    if not path.startswith(prefix):
        return f"only {prefix}... is forwarded by this proxy"
    return None


def upstream_url(upstream: str, path: str, raw_query: str) -> str:
    """The URL to sign and send, rebuilt from the decoded path and query with RFC 3986
    encoding, so the URL that is signed is byte for byte the URL that is sent."""
    encoded = quote(path, safe="/-_.~")
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    query = urlencode(pairs, quote_via=quote)
    return f"{upstream}{encoded}" + (f"?{query}" if query else "")


def client_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """The client's headers minus hop-by-hop ones, its credentials and its idea of the
    destination; repeated headers joined with commas."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lname = name.lower()
        if lname in _CLIENT_DROP or lname.startswith("x-amz-"):
            continue
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


def response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """The upstream's end-to-end headers (Retry-After among them), unchanged."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP)
