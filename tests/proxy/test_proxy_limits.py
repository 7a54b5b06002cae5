"""What the proxy does for #15 (nothing lost): throttling and outages reach Prometheus
unchanged (429/5xx with Retry-After, so ``retry_on_http_429`` can honour it), a body
over the limit is refused with 413 before anything is signed, and a connection never has
more than one request in flight upstream (no queue of bodies inside the proxy)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.harness import remote_write
from tests.harness.aio import ThreadedApp, http_call
from tests.harness.fixtures_dataplane import WORKSPACE_ID, StartProxy

WRITE_PATH = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"


class Upstream(ThreadedApp):
    """A stand-in AMP answering what the test sets; counts requests in flight."""

    name = "upstream"

    def __init__(self) -> None:
        super().__init__()
        self.answers: list[tuple[int, dict[str, str], bytes]] = []
        self.bodies: list[bytes] = []
        self.hosts: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0

    def make_app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                self.hosts.append(request.headers.get("Host", ""))
                self.bodies.append(await request.read())
                await asyncio.sleep(self.delay)
                status, headers, body = self.answers.pop(0) if self.answers else (200, {}, b"")
                return web.Response(status=status, headers=headers, body=body)
            finally:
                self.in_flight -= 1

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


def _write(url: str, body: bytes = b"\x00" * 100) -> tuple[int, dict[str, str], bytes]:
    reply = http_call("POST", url + WRITE_PATH, headers=remote_write.HEADERS, body=body)
    return reply.status, reply.headers, reply.body


@pytest.mark.parametrize(
    ("status", "retry_after", "error_type"),
    [
        (429, "7", "ThrottlingException"),
        (503, "120", "ServiceUnavailableException"),
        (500, None, "InternalServerException"),
        (502, "1", None),
    ],
)
def test_throttling_and_outages_pass_through_unchanged(
    aws_env: str,
    start_proxy: StartProxy,
    upstream: Upstream,
    status: int,
    retry_after: str | None,
    error_type: str | None,
) -> None:
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if error_type is not None:
        headers["x-amzn-ErrorType"] = error_type
    body = b'{"message":"Rate exceeded"}'
    upstream.answers = [(status, headers, body)]
    proxy = start_proxy(upstream.url)

    got_status, got_headers, got_body = _write(proxy.url)
    assert (got_status, got_body) == (status, body)
    assert got_headers.get("retry-after") == retry_after
    assert got_headers.get("x-amzn-errortype") == error_type
    assert got_headers["content-type"] == "application/json"
    labels = {"path_kind": "remote_write", "code": str(status)}
    assert proxy.wait_metric("ampd_proxy_requests_total", labels) == 1
    # the proxy does not retry on its own: Prometheus decides, with Retry-After in hand
    assert len(upstream.bodies) == 1


def test_a_body_over_the_limit_is_413_and_never_signed(
    aws_env: str, start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = start_proxy(upstream.url, max_body_bytes=4096)
    assert _write(proxy.url, b"\x01" * 4096)[0] == 200  # at the limit: fine
    status, _, body = _write(proxy.url, b"\x01" * 4097)
    assert status == 413
    assert b"larger than 4096 bytes" in body
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "too_large"}) == 1
    assert [len(b) for b in upstream.bodies] == [4096]


def _raw_exchange(port: int, payload: bytes, expect_responses: int) -> bytes:
    """Send raw bytes on one connection; read until ``expect_responses`` status lines
    and the connection has nothing more for a moment."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 ") < expect_responses:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_a_chunked_body_over_the_limit_is_413(
    aws_env: str, start_proxy: StartProxy, upstream: Upstream
) -> None:
    proxy = start_proxy(upstream.url, max_body_bytes=4096)
    assert proxy.server is not None and proxy.server.address is not None
    chunk = b"\x02" * 3000
    request = (
        f"POST {WRITE_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/x-protobuf\r\n\r\n"
    ).encode()
    request += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    reply = _raw_exchange(proxy.server.address[1], request, 1)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "too_large"}) == 1
    assert upstream.bodies == []


def test_pipelined_requests_go_upstream_one_at_a_time(
    aws_env: str, start_proxy: StartProxy, upstream: Upstream
) -> None:
    """Three writes sent back to back on one connection: the proxy forwards the next only
    after the previous one was answered, so at most one body per connection is held."""
    upstream.delay = 0.05  # a slow upstream gives a queueing proxy every chance to fan out
    proxy = start_proxy(upstream.url)
    assert proxy.server is not None and proxy.server.address is not None
    bodies = [bytes([i]) * 1000 for i in range(3)]
    payload = b"".join(
        (
            f"POST {WRITE_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(b)}\r\n"
            "Content-Type: application/x-protobuf\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    )
    reply = _raw_exchange(proxy.server.address[1], payload, 3)
    assert reply.count(b"HTTP/1.1 200 OK") == 3
    assert upstream.bodies == bodies  # in order
    assert upstream.max_in_flight == 1


def test_an_http_proxy_from_the_environment_is_used(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, start_proxy: StartProxy, upstream: Upstream
) -> None:
    """HTTP(S)_PROXY is read once at start (not per request), and still honoured."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", upstream.url)  # the stand-in plays the forward proxy
    proxy = start_proxy("http://127.0.0.1:9")  # never reached directly
    for _ in range(2):
        assert _write(proxy.url)[0] == 200
    assert upstream.hosts == ["127.0.0.1:9", "127.0.0.1:9"]
