"""The processes of bench/bench_proxy.py other than the proxy itself: the upstream sink,
the load generator, and proxy variants for ``--candidates``. Loopback only; every load
loop is bounded in count and time."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import importlib
import json
import sys
import time
import timeit
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path

from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ampd.gateways.sigv4 import Signer, botocore_headers, sigv4_headers
from ampd.proxy.config import load
from ampd.proxy.server import ProxyServer
from tests.harness import remote_write

LOOPBACK = "127.0.0.1"
WARMUP = 5  # unmeasured requests per connection before a phase


class _SinkProtocol(asyncio.Protocol):
    """Reads keep-alive HTTP/1.1 requests with a Content-Length body; answers each with
    200 and an empty body, as AMP's remote write does."""

    REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Type: text/plain\r\n\r\n"

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            length = _content_length(bytes(self.buf[:end]))
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(self.REPLY)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def sink_main(conn: Connection) -> None:
    """Serve until anything arrives on ``conn``; the port goes out on it first."""

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_SinkProtocol, LOOPBACK, 0, backlog=512)
        conn.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, conn.recv)
        server.close()

    asyncio.run(serve())


async def _load(
    port: int, request: bytes, total: int, concurrency: int, seconds: float
) -> tuple[list[float], float, list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    remaining = total
    deadline = float("inf")  # set when the measured part starts, after the warm-up
    start = asyncio.Event()
    warmed: list[int] = []

    def ready() -> int:
        return len(warmed)

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = _content_length(head)
        if length:
            await reader.readexactly(length)
        if head[9:12] != b"200":
            errors.append(head.split(b"\r\n", 1)[0].decode())

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        for _ in range(WARMUP):  # warm the connection and the proxy's credentials
            await one(reader, writer)
        warmed.append(1)
        await start.wait()
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            t0 = time.perf_counter()
            await one(reader, writer)
            latencies.append((time.perf_counter() - t0) * 1000)
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    warm_until = time.monotonic() + 60
    while any(not w.done() for w in workers) and ready() < concurrency:
        if time.monotonic() > warm_until:
            break
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    start.set()
    await asyncio.gather(*workers)
    return latencies, time.perf_counter() - started, errors[:5]


def loadgen_main(
    conn: Connection, port: int, request: bytes, total: int, concurrency: int, seconds: float
) -> None:
    """One phase: ``concurrency`` keep-alive connections, at most ``total`` requests and
    ``seconds``; sends (latencies in ms, seconds, first errors) back on ``conn``."""
    conn.send(asyncio.run(_load(port, request, total, concurrency, seconds)))


class _VariantSigner(Signer):
    """Signs with botocore's SigV4Auth, its CRT signer, or not at all (the HTTP floor)."""

    kind = "botocore"

    def needs_io(self) -> bool:
        return False if self.kind == "none" else super().needs_io()

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        at: dt.datetime | None = None,
    ) -> dict[str, str]:
        if self.kind == "none":
            return dict(headers)
        creds = self._frozen()
        if self.kind == "crt":
            auth = importlib.import_module("botocore.crt.auth").CrtSigV4Auth
            request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
            auth(creds, self.service, self.region).add_auth(request)
            return {k: str(v) for k, v in request.headers.items()}
        return botocore_headers(creds, self.service, self.region, method, url, headers, body, at)


def sign_costs(body: bytes, repeat: int = 7, number: int = 300) -> dict[str, float]:
    """µs per signature of one remote-write request, best of ``repeat`` timings (the best
    is the least disturbed by whatever else runs), for each signer that is installed."""
    creds = Credentials("AKIAAMPDBENCH0000001", "bench-secret", "bench-session-token")
    url = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-bench/api/v1/remote_write"
    headers = {"Host": "aps-workspaces.us-east-1.amazonaws.com", **remote_write.HEADERS}
    signers: dict[str, Callable[[], object]] = {
        "ampd (sigv4_headers)": lambda: sigv4_headers(
            creds, "aps", "us-east-1", "POST", url, headers, body
        ),
        "botocore SigV4Auth": lambda: botocore_headers(
            creds, "aps", "us-east-1", "POST", url, headers, body
        ),
        "SHA-256 of the body alone": lambda: hashlib.sha256(body).hexdigest(),
    }
    try:
        crt = importlib.import_module("botocore.crt.auth").CrtSigV4Auth

        def crt_sign() -> object:
            request = AWSRequest(method="POST", url=url, headers=dict(headers), data=body)
            crt(creds, "aps", "us-east-1").add_auth(request)
            return request.headers

        signers["botocore CRT (awscrt)"] = crt_sign
    except ImportError:
        pass
    return {
        name: min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6
        for name, fn in signers.items()
    }


def serve_variant(config_path: Path, signer_kind: str, loop_kind: str) -> int:
    """The proxy with another signer or event loop, until SIGTERM."""
    config = load(config_path)
    signer = Signer(config.region, config.service)
    if signer_kind != "ampd":
        signer = _VariantSigner(config.region, config.service)
        signer.kind = signer_kind

    async def run() -> int:
        stop = asyncio.Event()
        server = ProxyServer(config, signer)
        await server.start()
        event = {"event": "proxy.listening", "url": server.url}
        print(json.dumps(event), file=sys.stderr, flush=True)
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        await stop.wait()
        await server.stop()
        return 0

    if loop_kind == "uvloop":
        importlib.import_module("uvloop").install()
    return asyncio.run(run())
