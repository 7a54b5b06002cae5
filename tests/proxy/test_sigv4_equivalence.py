"""ampd's SigV4 fast path (ampd.gateways.sigv4.sigv4_headers) against botocore's SigV4Auth:
the same request at the same instant must get byte-identical headers, for generated
methods, paths, query strings, header sets, bodies and credentials."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import botocore.auth
import pytest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ampd.gateways.sigv4 import botocore_headers, sigv4_headers

NOW = dt.datetime(2026, 12, 1, 4, 59, 7)

_token_chars = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
header_names = st.text(_token_chars, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in {"host", "date", "x-amz-content-sha256"}
)
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from(" \t"), max_size=30
)
segments = st.text(st.characters(codec="utf-8"), max_size=8)
query_pairs = st.lists(st.tuples(segments, segments), max_size=4)


def _url(host: str, path: list[str], query: list[tuple[str, str]]) -> str:
    encoded = "/" + "/".join(quote(p, safe="-_.~") for p in path)
    q = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    return f"https://{host}{encoded}" + (f"?{q}" if q else "")


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: NOW)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "post"]),
    path=st.lists(segments, max_size=5),
    query=query_pairs,
    headers=st.dictionaries(header_names, header_values, max_size=6),
    body=st.binary(max_size=300),
    token=st.none() | st.text(_token_chars, min_size=1, max_size=40),
    region=st.sampled_from(["us-east-1", "eu-west-2", "us-gov-west-1"]),
    service=st.sampled_from(["aps", "sts"]),
)
def test_fast_path_matches_botocore(
    frozen_clock: None,
    method: str,
    path: list[str],
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    token: str | None,
    region: str,
    service: str,
) -> None:
    creds = Credentials("AKIAAMPDTEST0000001", "ampd-test-secret", token)
    host = f"aps-workspaces.{region}.amazonaws.com"
    url = _url(host, path, query)
    hdrs = {"Host": host, **headers}
    expected = botocore_headers(creds, service, region, method, url, hdrs, body)
    assert sigv4_headers(creds, service, region, method, url, hdrs, body, now=NOW) == expected


@pytest.mark.parametrize(
    "extra",
    [
        {"Authorization": "AWS4-HMAC-SHA256 stale", "X-Amz-Date": "20000101T000000Z"},
        {"X-Amz-Security-Token": "client-token"},
        {"User-Agent": "Prometheus/2.53.0", "Expect": "100-continue"},
        {"Content-Type": "application/x-protobuf", "content-type": "text/plain"},
        {"Date": "Tue, 01 Dec 2026 04:59:07 GMT"},  # botocore's own path
        {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"},  # botocore's own path
    ],
)
@pytest.mark.parametrize("token", [None, "session-token"])
def test_edge_headers_match_botocore(
    frozen_clock: None, extra: dict[str, str], token: str | None
) -> None:
    creds = Credentials("AKIAAMPDTEST0000001", "ampd-test-secret", token)
    host = "aps-workspaces.us-east-1.amazonaws.com:443"
    url = f"https://{host}/workspaces/ws-1/api/v1/query?query=up&time=1"
    hdrs = {"Host": host, **extra}
    expected = botocore_headers(creds, "aps", "us-east-1", "GET", url, hdrs, b"")
    assert sigv4_headers(creds, "aps", "us-east-1", "GET", url, hdrs, b"", now=NOW) == expected


def test_without_a_host_header_botocore_signs(frozen_clock: None) -> None:
    creds = Credentials("AKIAAMPDTEST0000001", "ampd-test-secret")
    url = "http://127.0.0.1:9/workspaces/ws-1/api/v1/remote_write"
    expected = botocore_headers(creds, "aps", "us-east-1", "POST", url, {}, b"x")
    assert sigv4_headers(creds, "aps", "us-east-1", "POST", url, {}, b"x") == expected
    assert expected["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAAMPDTEST0000001/")
