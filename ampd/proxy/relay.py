"""Signing and sending one request upstream, and streaming the answer back.

Status codes, bodies and end-to-end headers (``Retry-After`` among them) pass through
unchanged and nothing is retried, with one exception: a 403 in which AWS refuses the
signature's *time*. Prometheus would drop the batch on that 4xx, so the proxy takes the
upstream's time from the answer's ``Date`` header, keeps the difference as its clock
offset, and signs the same request once more at "now + offset". When it cannot correct
(no ``Date``, or still refused), it answers 503, which Prometheus retries.

An unreachable upstream is a 502, a timeout a 504, missing credentials a 503.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Protocol

import aiohttp
import structlog
from aiohttp import web
from aiohttp.helpers import get_env_proxy_for_url
from multidict import CIMultiDictProxy
from yarl import URL

from ampd.gateways.sigv4 import CredentialStatus, SigningError
from ampd.proxy.metrics import ProxyMetrics
from ampd.proxy.routing import response_headers
from ampd.proxy.skew import is_skew_refusal, offset_from_date

__all__ = ["Done", "Forwarder", "RequestSigner", "text_response"]

log = structlog.get_logger("ampd.proxy")

_SKEW_BODY_LIMIT = 64 * 1024  # a 403's body is read whole to see whether it is about time


class RequestSigner(Protocol):
    """What the proxy needs from ampd.gateways.sigv4.Signer (tests pass their own)."""

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        at: dt.datetime | None = None,
    ) -> dict[str, str]: ...

    def credential_status(self) -> CredentialStatus: ...

    def needs_io(self) -> bool: ...


# (path kind, status, started, method, path, extra fields): counts and logs one request
Done = Callable[..., None]


def text_response(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"ampd proxy: {message}\n")


class _Answer:
    """An upstream answer read whole (only 403s are: small, and maybe about skew)."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self, status: int, reason: str | None, headers: CIMultiDictProxy[str], body: bytes
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class Forwarder:
    """The upstream half of the proxy: one HTTP client session, the signer, the clock
    offset. ``upstream`` and ``signer`` may be swapped on reload."""

    def __init__(
        self,
        upstream: str,
        signer: RequestSigner,
        metrics: ProxyMetrics,
        *,
        timeout: aiohttp.ClientTimeout,
        connection_limit: int,
        executor: Executor,
    ) -> None:
        self.upstream = upstream
        self.signer = signer
        self.metrics = metrics
        self.offset = 0.0  # upstream clock minus ours, learnt from skew refusals
        self._timeout = timeout
        self._limit = connection_limit
        self._executor = executor
        self._session: aiohttp.ClientSession | None = None
        self._via: URL | None = None  # an HTTP(S) proxy on the way to the upstream
        self._via_auth: aiohttp.BasicAuth | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=30, ttl_dns_cache=60
            ),
            timeout=self._timeout,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # HTTPS_PROXY / NO_PROXY (private subnets may need them) are read once, here:
            # trust_env=True would look them up, and ~/.netrc, in a thread per request.
            trust_env=False,
        )
        self.retarget(self.upstream)

    def retarget(self, upstream: str) -> None:
        self.upstream = upstream
        try:
            self._via, self._via_auth = get_env_proxy_for_url(URL(upstream))
        except LookupError:
            self._via, self._via_auth = None, None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _set_offset(self, offset: float) -> None:
        self.offset = offset
        self.metrics.clock_offset.set(offset)

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """Sign at this host's time plus the learnt offset. Raises SigningError."""
        at = dt.datetime.fromtimestamp(time.time() + self.offset, dt.UTC) if self.offset else None
        if self.signer.needs_io():
            # Resolving or refreshing credentials may wait on IMDS or STS.
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, self.signer.sign, method, url, headers, body, at
            )
        return self.signer.sign(method, url, headers, body, at)

    async def forward(
        self,
        request: web.Request,
        kind: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        started: float,
        done: Done,
    ) -> web.StreamResponse:
        """Sign, send, and answer the client (see the module docstring)."""
        method, path = request.method, request.path
        self.metrics.request_bytes.inc(len(body))
        for attempt in (1, 2):
            try:
                signed = await self.sign(method, url, headers, body)
            except SigningError as e:
                self.metrics.signing_errors.inc()
                done(kind, 503, started, method, path, error=str(e))
                return text_response(503, f"cannot sign request: {e}")
            except Exception as e:  # a bug or an unexpected botocore failure: still answer
                self.metrics.signing_errors.inc()
                log.exception("proxy.signing_failed", path=path)
                done(kind, 500, started, method, path, error=type(e).__name__)
                return text_response(500, f"signing failed: {type(e).__name__}")
            answer = await self._send(request, kind, url, signed, body, started, done)
            if not isinstance(answer, _Answer):
                return answer
            if not is_skew_refusal(answer.status, answer.body):
                return await self._replay(request, answer, kind, started, done)
            offset = offset_from_date(answer.headers, time.time())
            if offset is None or attempt == 2:
                why = "no Date header to correct from" if offset is None else "still refused"
                self.metrics.clock_uncorrected.inc()
                log.error("proxy.clock_skew_uncorrected", reason=why, offset_seconds=self.offset)
                done(kind, 503, started, method, path, error="clock_skew", detail=why)
                return text_response(
                    503, f"upstream refused the signature's time (clock skew), {why}"
                )
            log.warning(
                "proxy.clock_skew_corrected",
                offset_seconds=round(offset, 3),
                previous_seconds=round(self.offset, 3),
            )
            self._set_offset(offset)
            self.metrics.clock_corrections.inc()
        raise AssertionError("unreachable")

    async def _send(
        self,
        request: web.Request,
        kind: str,
        url: str,
        signed: dict[str, str],
        body: bytes,
        started: float,
        done: Done,
    ) -> web.StreamResponse | _Answer:
        """Send; stream a non-403 answer back, or return a 403 read whole."""
        assert self._session is not None, "open() not called"
        method, path = request.method, request.path
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
                if upstream.status == 403:
                    data = bytearray()
                    async for chunk in upstream.content.iter_any():
                        data += chunk
                        if len(data) >= _SKEW_BODY_LIMIT:
                            break  # AWS's refusals are tiny; this only bounds a stranger's
                    return _Answer(upstream.status, upstream.reason, upstream.headers, bytes(data))
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
                done(kind, response.status, started, method, path, error="upstream_cut")
                raise
            timed_out = isinstance(e, TimeoutError)
            status = 504 if timed_out else 502
            what = "timed out" if timed_out else f"unreachable: {type(e).__name__}: {e}"
            done(kind, status, started, method, path, error=what)
            return text_response(status, f"upstream {self.upstream} {what}")
        self.metrics.response_bytes.inc(sent)
        done(kind, response.status, started, method, path, bytes_in=len(body), bytes_out=sent)
        return response

    async def _replay(
        self, request: web.Request, answer: _Answer, kind: str, started: float, done: Done
    ) -> web.StreamResponse:
        """A 403 that is not about time, passed through as the upstream sent it."""
        headers = response_headers(answer.headers)
        headers.popall("Content-Length", None)
        response = web.Response(
            status=answer.status, reason=answer.reason, headers=headers, body=answer.body
        )
        self.metrics.response_bytes.inc(len(answer.body))
        done(kind, answer.status, started, request.method, request.path, bytes_out=len(answer.body))
        return response
