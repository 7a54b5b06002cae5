"""The built-in SigV4 signing proxy.

Local clients (Prometheus remote_write, Grafana) send plain HTTP to loopback; the proxy
signs each request with the host's AWS credentials and forwards it to ONE configured
upstream. The client's Host header and absolute-form request targets are never used to
pick a destination, so the proxy is not an open signer for the instance role; with a
workspace id configured only ``/workspaces/<id>/...`` is forwarded, and only for the
local users allowed to use it (ampd.proxy.peers).

Request bodies (small snappy protobufs, query forms) are read whole because the
signature covers their hash, up to ``max_body_bytes`` (413 beyond, before anything is
signed). A connection's requests are forwarded one after the other: one body per
connection in flight and no queue in the proxy (a client that pipelines gets aiohttp's
bounded read-ahead: at most 32 parsed requests, reading paused past 128 KiB of unread
body; Prometheus and Grafana do not pipeline). Responses are streamed
back. Upstream status codes, bodies and end-to-end headers (``Retry-After`` among them)
pass through unchanged and nothing is retried here, so Prometheus sees 429 and 5xx
exactly as AMP sent them and decides itself. An unreachable upstream is a 502, a timeout
a 504, missing credentials a 503.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import aiohttp
import structlog
from aiohttp import web
from aiohttp.helpers import get_env_proxy_for_url
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.exposition import generate_latest
from yarl import URL

from ampd.gateways.sigv4 import CredentialStatus, Signer, SigningError
from ampd.proxy.config import ProxyConfig, ProxyConfigError, load
from ampd.proxy.metrics import ProxyMetrics
from ampd.proxy.peers import OwnerLookup, PeerGate, resolve_allowed
from ampd.proxy.routing import (
    client_headers,
    path_kind,
    refusal,
    response_headers,
    upstream_url,
)

__all__ = ["ProxyServer", "RequestSigner", "main", "path_kind"]

log = structlog.get_logger("ampd.proxy")

SHUTDOWN_GRACE = 10.0  # seconds in-flight requests get after SIGTERM
MAX_REQUEST_BYTES = 32 * 1024 * 1024
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
_METHODS = frozenset({"GET", "POST", "HEAD"})


class RequestSigner(Protocol):
    """What the proxy needs from ampd.gateways.sigv4.Signer (tests pass their own)."""

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]: ...

    def credential_status(self) -> CredentialStatus: ...

    def needs_io(self) -> bool: ...


def _debug_enabled(logger: object) -> bool:
    """False when debug lines are filtered out (structlog's filtering loggers say so)."""
    is_enabled_for = getattr(logger, "is_enabled_for", None)
    if is_enabled_for is None:
        return True
    return bool(is_enabled_for(logging.DEBUG))


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"ampd proxy: {message}\n")


class ProxyServer:
    """One listening proxy. ``start()`` binds, ``stop()`` drains and closes.

    Usable from any event loop; ``main()`` runs one until SIGTERM/SIGINT.
    """

    def __init__(
        self,
        config: ProxyConfig,
        signer: RequestSigner | None = None,
        *,
        registry: CollectorRegistry | None = None,
        shutdown_timeout: float = SHUTDOWN_GRACE,
        upstream_timeout: aiohttp.ClientTimeout = UPSTREAM_TIMEOUT,
        connection_limit: int = 64,
        max_body_bytes: int = MAX_REQUEST_BYTES,
        peer_owner: OwnerLookup | None = None,
    ) -> None:
        self.config = config
        self.signer: RequestSigner = signer or Signer(
            config.region, config.service, config.assume_role_arn
        )
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.metrics = ProxyMetrics(self.registry)
        self._shutdown_timeout = shutdown_timeout
        self._upstream_timeout = upstream_timeout
        self._connection_limit = connection_limit
        self._max_body = max_body_bytes
        self._peer_owner = peer_owner
        self.gate: PeerGate | None = None  # built by start(): resolving user names is I/O
        self._upstream = URL(config.upstream)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._via: URL | None = None  # an HTTP(S) proxy on the way to the upstream
        self._via_auth: aiohttp.BasicAuth | None = None
        self.address: tuple[str, int] | None = None
        # bound once start() runs (after logging is configured): a lazy structlog proxy
        # rebuilds its logger on every call, ~15 µs a request for a filtered debug line
        self._log: structlog.typing.FilteringBoundLogger = log
        self._debug = True
        self._counted: dict[tuple[str, int], Counter] = {}

    @property
    def url(self) -> str:
        if self.address is None:
            raise RuntimeError("proxy not started")
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def start(self) -> None:
        self._log = log.bind()
        self._debug = _debug_enabled(self._log)
        allowed = resolve_allowed(self.config.allowed_uids)
        self.gate = PeerGate(
            allowed,
            allow_remote=self.config.allow_non_loopback,
            **({"owner": self._peer_owner} if self._peer_owner else {}),
        )
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ampd-sign")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._connection_limit, keepalive_timeout=30, ttl_dns_cache=60
            ),
            timeout=self._upstream_timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # HTTPS_PROXY / NO_PROXY (private subnets may need them) are read once, below:
            # trust_env=True would look them up, and ~/.netrc, in a thread per request.
            trust_env=False,
        )
        try:
            self._via, self._via_auth = get_env_proxy_for_url(self._upstream)
        except LookupError:
            self._via, self._via_auth = None, None
        self._runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        try:
            await self._runner.setup()
            site = web.TCPSite(
                self._runner, self.config.listen_host, self.config.listen_port, backlog=512
            )
            await site.start()
        except BaseException:
            await self.stop()
            raise
        host, port = self._runner.addresses[0][:2]
        self.address = (str(host), int(port))
        status = await self._credential_status()
        log.info(
            "proxy.listening",
            url=self.url,
            upstream=self.config.upstream,
            workspace_id=self.config.workspace_id,
            region=self.config.region,
            service=self.config.service,
            allowed_uids=sorted(allowed) if allowed is not None else "any",
            credentials_ok=status.ok,
            credentials_method=status.method,
            credentials_error=status.error,
        )

    async def stop(self) -> None:
        """Stop accepting, give in-flight requests up to ``shutdown_timeout``, close."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _credential_status(self) -> CredentialStatus:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.signer.credential_status)

    async def _healthz(self, request: web.Request) -> web.Response:
        status = await self._credential_status()
        body = {
            "status": "ok" if status.ok else "degraded",
            "credentials": status.as_dict(),
            "upstream": self.config.upstream,
            "workspace_id": self.config.workspace_id,
            "region": self.config.region,
            "service": self.config.service,
        }
        return web.json_response(body, status=200 if status.ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _refusal(self, path: str) -> str | None:
        return refusal(path, self.config.workspace_id)

    def _upstream_url(self, request: web.Request) -> str:
        return upstream_url(self.config.upstream, request.path, request.rel_url.raw_query_string)

    def _done(
        self, kind: str, status: int, started: float, method: str, path: str, **extra: object
    ) -> None:
        counter = self._counted.get((kind, status))
        if counter is None:
            counter = self.metrics.requests.labels(path_kind=kind, code=str(status))
            self._counted[(kind, status)] = counter
        counter.inc()
        if status < 400 and not self._debug:
            return  # the common case: no log line, and nothing built for one
        ms = round((time.perf_counter() - started) * 1000, 2)
        fields = {"method": method, "path": path, "path_kind": kind, "status": status, "ms": ms}
        if status >= 500:
            self._log.warning("proxy.request", **fields, **extra)
        elif status >= 400:
            self._log.info("proxy.request", **fields, **extra)
        else:
            self._log.debug("proxy.request", **fields, **extra)

    def _refuse(
        self,
        reason: str,
        status: int,
        message: str,
        started: float,
        request: web.Request,
        **extra: object,
    ) -> web.Response:
        self.metrics.refused.labels(reason=reason).inc()
        self._done("refused", status, started, request.method, request.path, reason=reason, **extra)
        return _text(status, message)

    async def _read_body(self, request: web.Request) -> bytes | None:
        """The whole body (the signature covers its hash), or None when it is larger than
        the limit: one body per connection at a time, never more than the limit."""
        length = request.content_length
        if length is not None and length > self._max_body:
            return None
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked, and past the limit
            return None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        refused = self._admit(request, started)
        if refused is not None:
            return refused
        method, path = request.method, request.path
        kind = path_kind(path)
        body = await self._read_body(request)
        if body is None:
            return self._refuse(
                "too_large",
                413,
                f"request body larger than {self._max_body} bytes",
                started,
                request,
                content_length=request.content_length,
            )
        url = self._upstream_url(request)
        headers = client_headers(request.headers)
        headers["Host"] = self._upstream.raw_authority
        try:
            if self.signer.needs_io():
                # Resolving or refreshing credentials may wait on IMDS or STS.
                loop = asyncio.get_running_loop()
                signed = await loop.run_in_executor(
                    self._executor, self.signer.sign, method, url, headers, body
                )
            else:
                signed = self.signer.sign(method, url, headers, body)
        except SigningError as e:
            self.metrics.signing_errors.inc()
            self._done(kind, 503, started, method, path, error=str(e))
            return _text(503, f"cannot sign request: {e}")
        except Exception as e:  # a bug or an unexpected botocore failure: still answer
            self.metrics.signing_errors.inc()
            log.exception("proxy.signing_failed", path=path)
            self._done(kind, 500, started, method, path, error=type(e).__name__)
            return _text(500, f"signing failed: {type(e).__name__}")
        return await self._relay(request, kind, url, signed, body, started)

    def _admit(self, request: web.Request, started: float) -> web.Response | None:
        """A refusal (403 for a user or a path, 405 for a method), or None to go on."""
        assert self.gate is not None, "start() not called"
        verdict = self.gate.check(request.transport)
        if verdict.reason is not None:
            return self._refuse(
                verdict.reason,
                403,
                "this proxy signs only for the local users it is configured to serve",
                started,
                request,
                uid=verdict.uid,
            )
        if request.method not in _METHODS:
            return self._refuse(
                "method", 405, f"method {request.method} is not forwarded", started, request
            )
        refusal = self._refusal(request.path)
        if refusal is not None:
            return self._refuse("path", 403, refusal, started, request, detail=refusal)
        return None

    async def _relay(
        self,
        request: web.Request,
        kind: str,
        url: str,
        signed: dict[str, str],
        body: bytes,
        started: float,
    ) -> web.StreamResponse:
        """Send the signed request; stream the upstream's answer back unchanged (status,
        Retry-After and the other end-to-end headers, body)."""
        assert self._session is not None, "start() not called"
        method, path = request.method, request.path
        self.metrics.request_bytes.inc(len(body))
        response: web.StreamResponse | None = None
        sent = 0
        try:
            sent_at = time.perf_counter()
            async with self._session.request(
                method,
                URL(url, encoded=True),
                headers=signed,
                data=body if body else None,
                allow_redirects=False,
                proxy=self._via,
                proxy_auth=self._via_auth,
            ) as upstream:
                self.metrics.upstream_latency.observe(time.perf_counter() - sent_at)
                response = web.StreamResponse(
                    status=upstream.status,
                    reason=upstream.reason,
                    headers=response_headers(upstream.headers),
                )
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    sent += len(chunk)
                    await response.write(chunk)
                await response.write_eof()
        except (aiohttp.ClientError, TimeoutError) as e:
            self.metrics.response_bytes.inc(sent)
            if response is not None and response.prepared:
                # Headers already went out: all we can do is cut the connection.
                self._done(kind, response.status, started, method, path, error="upstream_cut")
                raise
            timed_out = isinstance(e, TimeoutError)
            status = 504 if timed_out else 502
            what = "timed out" if timed_out else f"unreachable: {type(e).__name__}: {e}"
            self._done(kind, status, started, method, path, error=what)
            return _text(status, f"upstream {self.config.upstream} {what}")
        self.metrics.response_bytes.inc(sent)
        self._done(kind, response.status, started, method, path, bytes_in=len(body), bytes_out=sent)
        return response


async def serve(config: ProxyConfig, stop: asyncio.Event | None = None) -> int:
    """Run a proxy until ``stop`` is set or SIGTERM/SIGINT arrives; 0 after a clean drain."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    server = ProxyServer(config)
    try:
        try:
            await server.start()
        except OSError as e:
            log.error("proxy.bind_failed", listen=config.listen, error=e.strerror or str(e))
            return 1
        await stop.wait()
        log.info("proxy.stopping", grace_seconds=SHUTDOWN_GRACE)
        await server.stop()
        log.info("proxy.stopped")
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def main(config_path: Path) -> int:
    """``ampd proxy --config PATH``: 0 on SIGTERM/SIGINT after a graceful drain,
    1 when the settings are invalid or the address cannot be bound."""
    try:
        config = load(config_path)
    except ProxyConfigError as e:
        log.error("proxy.config_invalid", error=str(e))
        return 1
    return asyncio.run(serve(config))
