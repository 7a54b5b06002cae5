"""An AMP data-plane stand-in that verifies SigV4 for real.

Every request's signature is recomputed with botocore (canonical request over method,
path, query, signed headers and the hash of the body actually received), using the
secret that ``credentials_lookup`` returns for the access key id (the check is
``tests.harness.dataplane_sigv4``). Rejections use AMP's shapes: HTTP 403,
``{"message": "..."}`` and an ``x-amzn-ErrorType`` header.

Accepted requests go to a receiver Prometheus (``--web.enable-remote-write-receiver``):

    POST /workspaces/<id>/api/v1/remote_write        -> /api/v1/write
    GET|POST /workspaces/<id>/api/v1/{query,query_range,series,labels,
                                      label/<n>/values,metadata}  -> /api/v1/...

    python -m tests.harness.dataplane --port 0 --receiver http://127.0.0.1:9090 \
        --workspace ws-demo --credential AKID=SECRET [--credentials-json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from tests.harness.aio import ThreadedApp, run_standalone
from tests.harness.dataplane_sigv4 import (
    AMZ_DATE_FORMAT,
    MAX_SKEW_SECONDS,
    MSG_MISMATCH,
    MSG_MISSING,
    MSG_UNKNOWN_KEY,
    Verdict,
    json_file_credentials,
    static_credentials,
    verify_sigv4,
)

# the signature check moved to dataplane_sigv4; its names stay importable from here
__all__ = [
    "AMZ_DATE_FORMAT",
    "MAX_SKEW_SECONDS",
    "MSG_MISMATCH",
    "MSG_MISSING",
    "MSG_UNKNOWN_KEY",
    "DataPlane",
    "Seen",
    "Verdict",
    "json_file_credentials",
    "static_credentials",
    "verify_sigv4",
]

_QUERY_RE = re.compile(
    r"^/workspaces/(?P<ws>[^/]+)/api/v1/"
    r"(?P<ep>query|query_range|series|labels|metadata|label/[^/]+/values)$"
)
_WRITE_RE = re.compile(r"^/workspaces/(?P<ws>[^/]+)/api/v1/remote_write$")
_WS_RE = re.compile(r"^/workspaces/(?P<ws>[^/]+)(/|$)")


@dataclass(frozen=True)
class Seen:
    """One request as the emulator saw it (header names lower-cased, values kept)."""

    method: str
    path: str
    host: str
    headers: Mapping[str, str]
    verdict: Verdict
    status: int
    peer: str  # client address:port, one per upstream connection


def _aws_error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())},
    )


class DataPlane(ThreadedApp):
    """The verifying AMP data-plane stand-in.

    ``credentials_lookup`` maps an access key id to its secret (a dict's ``get``, or the
    IMDS stand-in's ``secret_for``); ``workspaces`` is a set of known ids or a predicate.
    Tests read ``accepted``, ``rejected`` (reason -> count), ``accepted_key_ids``,
    ``seen`` and ``in_flight``; they may set ``tamper`` (every signature is wrong),
    ``fault`` ((status, body) answered to accepted requests instead of forwarding, with
    ``fault_headers``; or ``throttle()``/``unavailable()``/``healthy()``), ``delay``
    (seconds before answering), ``clock`` and ``clock_offset`` (seconds this "AWS" is
    ahead of ``clock``: it checks signature times against, and sends in ``Date``, its
    own time, as AWS does; ``date_override`` replaces that header);
    ``refuse_connections()`` closes the listening socket (clients get ECONNREFUSED) until
    ``accept_connections()``.
    """

    name = "dataplane"

    def __init__(
        self,
        credentials_lookup: Callable[[str], str | None],
        workspaces: Collection[str] | Callable[[str], bool],
        receiver_url: str | None = None,
        *,
        region: str = "us-east-1",
        service: str = "aps",
        max_skew: float = MAX_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
        clock_offset: float = 0.0,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.credentials_lookup = credentials_lookup
        self._known: Callable[[str], bool] = (
            workspaces if callable(workspaces) else frozenset(workspaces).__contains__
        )
        self.receiver_url = receiver_url.rstrip("/") if receiver_url else None
        self.region = region
        self.service = service
        self.max_skew = max_skew
        self.clock = clock
        self.clock_offset = clock_offset  # seconds this "AWS" is ahead of ``clock``
        # what ``Date`` says instead of now() (a liar, or "" for no usable date)
        self.date_override: str | None = None
        self.tamper = False
        self.fault: tuple[int, bytes] | None = None
        self.fault_headers: dict[str, str] = {}
        self.faulted = 0  # requests answered with ``fault``
        self.refusing = False
        self.delay = 0.0
        self.in_flight = 0
        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.accepted_key_ids: list[str] = []
        self.seen: list[Seen] = []
        self._session: aiohttp.ClientSession | None = None

    def workspace_url(self, workspace_id: str) -> str:
        return f"{self.url}/workspaces/{workspace_id}"

    def remote_write_url(self, workspace_id: str) -> str:
        return f"{self.workspace_url(workspace_id)}/api/v1/remote_write"

    # -- fault injection ----------------------------------------------------------------
    def throttle(self, retry_after: float | None = 1.0) -> None:
        """Answer every accepted request like a throttled workspace: HTTP 429 (AMP's
        ThrottlingException body), with ``Retry-After`` in whole seconds when given."""
        self.fault_headers = (
            {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else {}
        )
        self.fault_headers["x-amzn-ErrorType"] = "ThrottlingException"
        self.fault = (429, b'{"message":"Rate exceeded"}')

    def unavailable(self, status: int = 503) -> None:
        """Answer every accepted request with a 5xx (ServiceUnavailable by default)."""
        self.fault_headers = {"x-amzn-ErrorType": "ServiceUnavailableException"}
        self.fault = (status, b'{"message":"Service Unavailable"}')

    def healthy(self) -> None:
        """Stop injecting answers (connections are left as they are)."""
        self.fault = None
        self.fault_headers = {}

    def refuse_connections(self) -> None:
        """Close the listening socket: new connections are refused, the port is kept."""
        if not self.refusing:
            self.run(self._stop_sites())
            self.refusing = True

    def accept_connections(self) -> None:
        if self.refusing:
            self.run(self._restart_site())
            self.refusing = False

    async def _stop_sites(self) -> None:
        assert self._runner is not None
        for site in list(self._runner.sites):
            await site.stop()
        # and drop open keep-alive connections, as a host that went away would
        server = self._runner.server
        for handler in list(server.connections) if server is not None else []:
            handler.force_close()
            if handler.transport is not None:
                handler.transport.close()

    async def _restart_site(self) -> None:
        assert self._runner is not None
        await web.TCPSite(self._runner, self.host, self.port).start()

    def reset(self) -> None:
        with self._lock:
            self.accepted = 0
            self.rejected.clear()
            self.accepted_key_ids.clear()
            self.seen.clear()

    def seen_paths(self) -> list[str]:
        with self._lock:
            return [s.path for s in self.seen]

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._date)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    def now(self) -> float:
        """This stand-in's idea of the time (AWS's clock)."""
        return self.clock() + self.clock_offset

    async def _date(self, request: web.Request, response: web.StreamResponse) -> None:
        """Every answer carries this stand-in's own time in ``Date``, as AWS's do."""
        if self.date_override is not None:
            response.headers["Date"] = self.date_override
        else:
            response.headers["Date"] = email.utils.formatdate(self.now(), usegmt=True)

    async def _open(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def _close(self, app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _record(self, request: web.Request, verdict: Verdict, status: int) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen = Seen(
            method=request.method,
            path=request.path,
            host=request.headers.get("Host", ""),
            headers={k.lower(): v for k, v in request.headers.items()},
            verdict=verdict,
            status=status,
            peer=f"{peer[0]}:{peer[1]}" if peer else "",
        )
        with self._lock:
            self.seen.append(seen)
            if verdict.ok:
                self.accepted += 1
                if verdict.access_key_id:
                    self.accepted_key_ids.append(verdict.access_key_id)
            else:
                self.rejected[verdict.reason] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await self._check_and_route(request)
        finally:
            self.in_flight -= 1

    async def _check_and_route(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        verdict = verify_sigv4(
            request.method,
            request.headers.get("Host", ""),
            request.raw_path,
            request.headers,
            body,
            credentials_lookup=self.credentials_lookup,
            region=self.region,
            service=self.service,
            now=self.now(),
            max_skew=self.max_skew,
            tamper=self.tamper,
        )
        if not verdict.ok:
            self._record(request, verdict, verdict.status)
            return _aws_error(verdict.status, verdict.error_type, verdict.message)
        response = await self._route(request, body)
        self._record(request, verdict, response.status)
        return response

    async def _route(self, request: web.Request, body: bytes) -> web.Response:
        path = request.path
        m = _WS_RE.match(path)
        if m is None or not self._known(m["ws"]):
            ws = m["ws"] if m else ""
            return _aws_error(
                404, "ResourceNotFoundException", f"Workspace not found: {ws or path}"
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fault is not None:
            status, payload = self.fault
            with self._lock:
                self.faulted += 1
            return web.Response(
                status=status,
                body=payload,
                content_type="text/plain",
                headers=dict(self.fault_headers) or None,
            )
        if _WRITE_RE.match(path):
            if request.method != "POST":
                return _aws_error(405, "ValidationException", "remote_write takes POST")
            return await self._to_receiver("POST", "/api/v1/write", request, body)
        q = _QUERY_RE.match(path)
        if q is not None and request.method in ("GET", "POST"):
            return await self._to_receiver(request.method, f"/api/v1/{q['ep']}", request, body)
        return _aws_error(404, "ResourceNotFoundException", f"No route for {request.method} {path}")

    async def _to_receiver(
        self, method: str, path: str, request: web.Request, body: bytes
    ) -> web.Response:
        if self.receiver_url is None or self._session is None:
            return web.Response(status=200)
        keep = ("Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version", "Accept")
        headers = {h: request.headers[h] for h in keep if h in request.headers}
        query = request.rel_url.raw_query_string
        url = f"{self.receiver_url}{path}" + (f"?{query}" if query else "")
        try:
            async with self._session.request(
                method, URL(url, encoded=True), data=body or None, headers=headers
            ) as r:
                payload = await r.read()
                ctype = r.headers.get("Content-Type")
                return web.Response(
                    status=r.status,
                    body=payload,
                    headers={"Content-Type": ctype} if ctype else None,
                )
        except aiohttp.ClientError as e:
            return _aws_error(500, "InternalServerException", f"receiver unreachable: {e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.dataplane")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--receiver", default=None, help="receiver Prometheus base URL")
    parser.add_argument("--workspace", action="append", default=[], help="known workspace id")
    parser.add_argument("--credential", action="append", default=[], help="AKID=SECRET")
    parser.add_argument("--credentials-json", type=Path, default=None)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, help="seconds this AWS is ahead of the host"
    )
    args = parser.parse_args(argv)
    static = dict(c.split("=", 1) for c in args.credential)
    from_file = json_file_credentials(args.credentials_json) if args.credentials_json else None

    def lookup(akid: str) -> str | None:
        return static.get(akid) or (from_file(akid) if from_file else None)

    dp = DataPlane(
        lookup,
        args.workspace or (lambda _ws: True),
        args.receiver,
        region=args.region,
        clock_offset=args.clock_offset,
        port=args.port,
    )

    def start() -> dict[str, Any]:
        dp.start()
        return {"url": dp.url, "region": dp.region, "workspaces": args.workspace}

    return run_standalone(start, dp.stop)


if __name__ == "__main__":
    raise SystemExit(main())
