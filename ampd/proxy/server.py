"""The built-in SigV4 signing proxy.

Local clients (Prometheus remote_write, Grafana) send plain HTTP to loopback; the proxy
signs each request with the host's AWS credentials and forwards it to ONE configured
upstream. The client's Host header and absolute-form request targets are never used to
pick a destination, so the proxy is not an open signer for the instance role: only
``/workspaces/<id>/...`` of the configured workspace is forwarded, and only for the
local users allowed to use it (ampd.proxy.peers). With no workspace id known yet,
nothing is forwarded (503: the workspace is being created, try again).

Request bodies (small snappy protobufs, query forms) are read whole because the
signature covers their hash, up to ``max_body_bytes`` (413 beyond, before anything is
signed). A connection's requests are forwarded one after the other: one body per
connection in flight and no queue in the proxy (a client that pipelines gets aiohttp's
bounded read-ahead: at most 32 parsed requests, reading paused past 128 KiB of unread
body; Prometheus and Grafana do not pipeline). Signing, sending and the answer are
ampd.proxy.relay's; SIGHUP handling is ampd.proxy.run's (``reload`` here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.exposition import generate_latest

from ampd.gateways.sigv4 import CredentialStatus, Signer
from ampd.proxy.config import ProxyConfig
from ampd.proxy.metrics import ProxyMetrics
from ampd.proxy.peers import OwnerLookup, PeerGate, resolve_allowed
from ampd.proxy.relay import Forwarder, RequestSigner, text_response
from ampd.proxy.routing import client_headers, path_kind, refusal, upstream_url

__all__ = ["ProxyServer", "RequestSigner", "path_kind"]

log = structlog.get_logger("ampd.proxy")

SHUTDOWN_GRACE = 10.0  # seconds in-flight requests get after SIGTERM
MAX_REQUEST_BYTES = 32 * 1024 * 1024
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
_METHODS = frozenset({"GET", "POST", "HEAD"})
_PER_PEER_REASONS = frozenset({"uid", "peer_unknown"})
_REFUSAL_LOG_EVERY = 60.0  # seconds between log lines for one refused user


def _debug_enabled(logger: object) -> bool:
    """False when debug lines are filtered out (structlog's filtering loggers say so)."""
    is_enabled_for = getattr(logger, "is_enabled_for", None)
    if is_enabled_for is None:
        return True
    return bool(is_enabled_for(logging.DEBUG))


def _signer_for(config: ProxyConfig) -> Signer:
    return Signer(config.region, config.service, config.assume_role_arn)


class ProxyServer:
    """One listening proxy. ``start()`` binds, ``reload()`` swaps the settings behind the
    same socket, ``stop()`` drains and closes. Usable from any event loop;
    ampd.proxy.run runs one until SIGTERM/SIGINT.
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
        self._own_signer = signer is None  # ours to rebuild when region or role change
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.metrics = ProxyMetrics(self.registry)
        self._shutdown_timeout = shutdown_timeout
        self._max_body = max_body_bytes
        self._peer_owner = peer_owner
        self.gate: PeerGate | None = None  # built by start(): resolving user names is I/O
        self._runner: web.AppRunner | None = None
        # signing may wait on IMDS/STS; peer lookups have their own threads, so a slow
        # credential refresh never holds up the check of a new connection
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ampd-sign")
        self._peer_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ampd-peer")
        self.forwarder = Forwarder(
            config.upstream,
            signer or _signer_for(config),
            self.metrics,
            timeout=upstream_timeout,
            connection_limit=connection_limit,
            executor=self._executor,
        )
        self.address: tuple[str, int] | None = None
        # bound once start() runs (after logging is configured): a lazy structlog proxy
        # rebuilds its logger on every call, ~15 µs a request for a filtered debug line
        self._log: structlog.typing.FilteringBoundLogger = log
        self._debug = True
        self._counted: dict[tuple[str, int], Counter] = {}
        self._refusal_lines: dict[tuple[str, object], tuple[float, int]] = {}

    @property
    def signer(self) -> RequestSigner:
        return self.forwarder.signer

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

    async def _gate_for(self, config: ProxyConfig) -> PeerGate:
        loop = asyncio.get_running_loop()
        allowed = await loop.run_in_executor(
            self._peer_executor, resolve_allowed, config.allowed_uids
        )
        return PeerGate(
            allowed,
            allow_remote=config.allow_non_loopback,
            executor=self._peer_executor,
            **({"owner": self._peer_owner} if self._peer_owner else {}),
        )

    async def start(self) -> None:
        self._log = log.bind()
        self._debug = _debug_enabled(self._log)
        self.gate = await self._gate_for(self.config)
        await self.forwarder.open()
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
        await self._announce("proxy.listening")

    async def _announce(self, event: str) -> None:
        status = await self._credential_status()
        assert self.gate is not None
        allowed = self.gate.allowed
        log.info(
            event,
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

    async def reload(self, config: ProxyConfig) -> None:
        """Use new settings for the next requests, on the same listening socket.

        Allowed users, workspace, upstream, region, service and role change in place;
        connections are checked again against the new allowed users. The listen address
        cannot move without giving up the socket: a new one is logged and ignored until
        the next restart.
        """
        if (config.listen_host, config.listen_port) != (
            self.config.listen_host,
            self.config.listen_port,
        ):
            log.warning(
                "proxy.reload_listen_ignored", listen=config.listen, kept=self.config.listen
            )
        gate = await self._gate_for(config)
        if self._own_signer and (
            (config.region, config.service, config.assume_role_arn)
            != (self.config.region, self.config.service, self.config.assume_role_arn)
        ):
            self.forwarder.signer = _signer_for(config)
        self.forwarder.retarget(config.upstream)
        self.gate = gate
        self.config = config
        await self._announce("proxy.reloaded")

    async def stop(self) -> None:
        """Stop accepting, give in-flight requests up to ``shutdown_timeout``, close."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.forwarder.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._peer_executor.shutdown(wait=False, cancel_futures=True)

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
            "clock_offset_seconds": round(self.forwarder.offset, 3),
        }
        return web.json_response(body, status=200 if status.ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _done(
        self, kind: str, status: int, started: float, method: str, path: str, **extra: object
    ) -> None:
        counter = self._counted.get((kind, status))
        if counter is None:
            counter = self.metrics.requests.labels(path_kind=kind, code=str(status))
            self._counted[(kind, status)] = counter
        counter.inc()
        if (status < 400 and not self._debug) or extra.get("suppressed") is False:
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
        if reason in _PER_PEER_REASONS:
            # another local user decides how often these happen: one line per user and
            # reason a minute (with the count left out), never one per connection
            extra["suppressed"] = self._log_budget(reason, extra.get("uid"))
        self._done("refused", status, started, request.method, request.path, reason=reason, **extra)
        return text_response(status, message)

    def _log_budget(self, reason: str, uid: object) -> int | bool:
        """False: no line now; else the number of lines left out since the last one."""
        key = (reason, uid)
        now = time.monotonic()
        last, skipped = self._refusal_lines.get(key, (float("-inf"), 0))
        if now - last < _REFUSAL_LOG_EVERY:
            self._refusal_lines[key] = (last, skipped + 1)
            return False
        if len(self._refusal_lines) > 1024:  # many uids: forget the oldest
            self._refusal_lines.clear()
        self._refusal_lines[key] = (now, 0)
        return skipped

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
        refused = await self._admit(request, started)
        if refused is not None:
            return refused
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
        config = self.config  # one request sees one configuration, even across a reload
        url = upstream_url(config.upstream, request.path, request.rel_url.raw_query_string)
        headers = client_headers(request.headers)
        headers["Host"] = config.upstream_host
        return await self.forwarder.forward(
            request, path_kind(request.path), url, headers, body, started, self._done
        )

    async def _admit(self, request: web.Request, started: float) -> web.Response | None:
        """A refusal (403 for a user or a path, 405 for a method, 503 while no workspace
        is known), or None to go on."""
        assert self.gate is not None, "start() not called"
        verdict = await self.gate.check(request.transport)
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
        if self.config.workspace_id is None:
            return self._refuse(
                "no_workspace",
                503,
                "no workspace id is known yet, so nothing is forwarded; "
                "ampd configures it once the workspace exists",
                started,
                request,
            )
        why = refusal(request.path, self.config.workspace_id)
        if why is not None:
            return self._refuse("path", 403, why, started, request, detail=why)
        return None
