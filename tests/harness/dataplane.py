"""An AMP data-plane stand-in that verifies SigV4 for real.

Every request's signature is recomputed with botocore (canonical request over method,
path, query, signed headers and the hash of the body actually received), using the
secret that ``credentials_lookup`` returns for the access key id. Rejections use AMP's
shapes: HTTP 403, ``{"message": "..."}`` and an ``x-amzn-ErrorType`` header.

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
import calendar
import email.utils
import hashlib
import hmac
import json
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
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from multidict import CIMultiDictProxy
from yarl import URL

from tests.harness.aio import ThreadedApp, run_standalone

MAX_SKEW_SECONDS = 300.0
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

MSG_MISSING = "Missing Authentication Token"
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
MSG_UNKNOWN_KEY = "The security token included in the request is invalid."

_QUERY_RE = re.compile(
    r"^/workspaces/(?P<ws>[^/]+)/api/v1/"
    r"(?P<ep>query|query_range|series|labels|metadata|label/[^/]+/values)$"
)
_WRITE_RE = re.compile(r"^/workspaces/(?P<ws>[^/]+)/api/v1/remote_write$")
_WS_RE = re.compile(r"^/workspaces/(?P<ws>[^/]+)(/|$)")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one request's signature."""

    ok: bool
    reason: str  # accepted | missing_auth | malformed | unknown_key | wrong_region | ...
    status: int = 200
    error_type: str = ""
    message: str = ""
    access_key_id: str | None = None


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


def _reject(
    status: int, reason: str, error_type: str, message: str, akid: str | None = None
) -> Verdict:
    return Verdict(False, reason, status, error_type, message, akid)


def _amz(t: float) -> str:
    return time.strftime(AMZ_DATE_FORMAT, time.gmtime(t))


class _Recompute(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client says it signed, and the
    hash of the body that arrived."""

    def __init__(
        self,
        credentials: Credentials,
        service: str,
        region: str,
        signed: list[tuple[str, str]],
        body_hash: str,
    ) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed
        self._body_hash = body_hash

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        out = HTTPHeaders()
        for name, value in self._signed:
            out[name] = value  # email.message semantics: repeated names are kept
        return out

    def payload(self, request: AWSRequest) -> str:
        return self._body_hash


def _parse_authorization(value: str) -> dict[str, str] | str:
    """The Authorization header's fields, or the AWS message for a malformed one."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return f"Unsupported Authorization Type. Authorization={value[:40]}"
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        return " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
    return fields


def verify_sigv4(
    method: str,
    host: str,
    raw_path: str,
    headers: CIMultiDictProxy[str],
    body: bytes,
    *,
    credentials_lookup: Callable[[str], str | None],
    region: str,
    service: str,
    now: float,
    max_skew: float = MAX_SKEW_SECONDS,
    tamper: bool = False,
) -> Verdict:
    """Check a request's SigV4 signature the way AWS does (header-signed requests)."""
    auth = headers.get("Authorization")
    if not auth:
        return _reject(403, "missing_auth", "MissingAuthenticationTokenException", MSG_MISSING)
    fields = _parse_authorization(auth)
    if isinstance(fields, str):
        return _reject(403, "malformed", "IncompleteSignatureException", fields)
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        return _reject(
            403,
            "malformed",
            "IncompleteSignatureException",
            f"Credential should be scoped with a valid terminator: 'aws4_request', "
            f"not '{fields['Credential']}'.",
        )
    akid, scope_date, scope_region, scope_service, _ = scope
    amz_date = headers.get("X-Amz-Date")
    if not amz_date:
        return _reject(
            403,
            "malformed",
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            akid,
        )
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, AMZ_DATE_FORMAT))
    except ValueError:
        return _reject(
            403,
            "malformed",
            "IncompleteSignatureException",
            f"Invalid X-Amz-Date: {amz_date}",
            akid,
        )
    signed_names = fields["SignedHeaders"].split(";")
    if "host" not in signed_names:
        return _reject(
            403,
            "malformed",
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            akid,
        )
    secret = credentials_lookup(akid)
    if secret is None:
        return _reject(403, "unknown_key", "UnrecognizedClientException", MSG_UNKNOWN_KEY, akid)
    if scope_region != region:
        return _reject(
            403,
            "wrong_region",
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{scope_region}'. ",
            akid,
        )
    if scope_service != service:
        return _reject(
            403,
            "wrong_service",
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'. ",
            akid,
        )
    if scope_date != amz_date[:8]:
        return _reject(
            403,
            "malformed",
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
            akid,
        )
    if now - signed_at > max_skew:
        return _reject(
            403,
            "expired",
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {_amz(now - max_skew)} "
            f"({_amz(now)} - {int(max_skew // 60)} min.)",
            akid,
        )
    if signed_at - now > max_skew:
        return _reject(
            403,
            "not_yet_valid",
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than "
            f"{_amz(now + max_skew)} ({_amz(now)} + {int(max_skew // 60)} min.)",
            akid,
        )
    signed: list[tuple[str, str]] = []
    for name in signed_names:
        values = headers.getall(name, [])
        if not values:
            return _reject(403, "bad_signature", "InvalidSignatureException", MSG_MISMATCH, akid)
        signed.extend((name, v) for v in values)
    body_hash = hashlib.sha256(body).hexdigest()
    claimed = headers.get("X-Amz-Content-Sha256")
    if claimed is not None and claimed != body_hash:
        return _reject(403, "bad_signature", "InvalidSignatureException", MSG_MISMATCH, akid)
    request = AWSRequest(method=method, url=f"http://{host}{raw_path}", data=body)
    request.context["timestamp"] = amz_date
    signer = _Recompute(Credentials(akid, secret), scope_service, scope_region, signed, body_hash)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if tamper or not hmac.compare_digest(expected, fields["Signature"]):
        return _reject(403, "bad_signature", "InvalidSignatureException", MSG_MISMATCH, akid)
    return Verdict(True, "accepted", 200, access_key_id=akid)


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


def static_credentials(pairs: Mapping[str, str]) -> Callable[[str], str | None]:
    return dict(pairs).get


def json_file_credentials(path: Path) -> Callable[[str], str | None]:
    """Secrets read from a JSON object file on every lookup (a demo may rewrite it)."""

    def lookup(akid: str) -> str | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        value = data.get(akid)
        return value if isinstance(value, str) else None

    return lookup


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
