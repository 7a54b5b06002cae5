"""The emulator's HTTP layer: recording, fault injection, credential checks, the IAM
operations moto lacks or pages unlike AWS, forwarding to moto and the control API."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.harness.aws_amp import required_members
from tests.harness.aws_amp_http import AmpRoutes, amp_operation
from tests.harness.aws_appconfig_http import (
    AppConfigRoutes,
    appconfig_control,
    appconfig_operation,
    is_data_path,
)
from tests.harness.aws_iam_http import IamRoutes
from tests.harness.aws_iam_pages import PAGED_LISTS
from tests.harness.aws_pricing import get_products
from tests.harness.aws_wire import (
    _JSON_SERVICES,
    ACCOUNT_ID,
    CHECKED,
    DEFAULT_PRINCIPAL,
    Discard,
    control,
    model_checker,
    request_params,
    server_error_code,
    xml_text,
)

if TYPE_CHECKING:
    from tests.harness.aws_emulator import AwsEmulator

_AMZ_JSON = "application/x-amz-json-1.1"
_READ_PREFIXES = ("Describe", "List", "Get", "Head", "Simulate")
# reads whose names do not say so: a Data API session changes nothing in the account
_READS = frozenset({"StartConfigurationSession"})
# path-style S3: (method, has a key) -> operation, for recording and fault injection
_S3_OPERATIONS = {
    ("GET", True): "GetObject",
    ("HEAD", True): "HeadObject",
    ("PUT", True): "PutObject",
    ("DELETE", True): "DeleteObject",
    ("PUT", False): "CreateBucket",
    ("GET", False): "ListObjects",
}
_MAX_SKEW = 300.0  # SigV4: a signature more than 5 minutes off the server's clock is refused
_CREDENTIAL_RE = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")
_IAM_ACTION_PREFIX = {"aps": "aps", "iam": "iam", "sts": "sts", "appconfigdata": "appconfig"}
_APPCONFIG = frozenset({"appconfig", "appconfigdata"})  # recorded: appconfigdata, the Data API


@dataclass(frozen=True)
class Recorded:
    service: str  # signing name: aps, iam, sts
    operation: str
    method: str
    status: int
    path: str
    at: float
    region: str = "us-east-1"  # from the request's signature
    # the request's parameters: the form of a query call (iam, sts), the JSON body (aps,
    # ssm), plus "query" (the URL's query string) -- what tests.harness.iam_calls reads
    params: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_write(self) -> bool:
        return not self.operation.startswith(_READ_PREFIXES) and self.operation not in _READS


@dataclass
class _Fault:
    kind: str  # throttle | error | drop | deny | latency
    operation: str | None  # None: every operation
    times: int | None = 1  # None: until cleared
    status: int | None = 400  # None: the service's own (throttling: 429 aps, 400 IAM/STS)
    seconds: float = 0.0
    principal: str = DEFAULT_PRINCIPAL
    retry_after: int | None = None
    code: str | None = None
    message: str | None = None


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a dropped-connection fault, a timed-out caller) is normal
    here: no traceback on stderr, where it would mix with what a test reads."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(AmpRoutes, AppConfigRoutes, IamRoutes, BaseHTTPRequestHandler):
    emulator: AwsEmulator
    protocol_version = "HTTP/1.1"
    server_version = "ampd-aws-emulator"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    # -- plumbing -----------------------------------------------------------------------

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self._check(status, headers or {}, body)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        self._send(status, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def _error(
        self,
        service: str,
        status: int,
        code: str,
        message: str,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if service == "s3":  # REST-XML, no envelope
            xml = f"<Error><Code>{code}</Code><Message>{xml_text(message)}</Message></Error>"
            self._send(status, xml.encode(), {"Content-Type": "application/xml"})
            return
        if service in _JSON_SERVICES:
            body = json.dumps({"message": message, "__type": code, **(extra or {})}).encode()
            sent = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
            self._send(status, body, {**sent, **(headers or {})})
            return
        xml = (
            f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/2010-05-08/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{xml_text(message)}</Message>"
            "</Error><RequestId>emulated</RequestId></ErrorResponse>"
        )
        self._send(status, xml.encode(), {"Content-Type": "text/xml", **(headers or {})})

    def _check(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Records where the response departs from botocore's model of its operation."""
        pending = self._unrecorded
        checker = model_checker()
        if pending is None or checker is None or self._unchecked:
            return
        service, operation = pending[0], pending[1]
        if service not in CHECKED or operation == "Unknown":
            return
        try:
            found = checker(service, operation, status, headers, body)
        except Exception as e:
            found = [f"model_check raised {type(e).__name__}: {e}"]
        for v in found:
            self.emulator._violation(f"{service}:{operation} {status}: {v}")

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path.startswith("/_emulator/appconfig/"):
            name = parsed.path.removeprefix("/_emulator/appconfig/")
            appconfig_control(self, self.emulator.appconfig, name, body)
            return
        if parsed.path.startswith("/_emulator/"):
            control(self, self.emulator, parsed.path, body)
            return
        auth = self.headers.get("Authorization", "")
        m = _CREDENTIAL_RE.search(auth)
        region = m.group(2) if m else "us-east-1"
        service = m.group(3) if m else "unknown"
        if service == "appconfig" and is_data_path(parsed.path):
            service = "appconfigdata"  # the Data API signs as appconfig too
        operation, ids = self._operation(service, self.command, parsed.path, body)
        # Recorded when the status line is produced (send_response), before the client can
        # see an answer: a test that reads the log right after its call returns finds it.
        params = request_params(service, parsed, body)
        if service == "iam":
            with contextlib.suppress(Exception):  # best effort: never fail the request
                params["_context"] = self.emulator.iam_context(region, params)
        if service == "appconfigdata":  # IAM authorizes it on the profile's ids
            with contextlib.suppress(Exception):
                params["_ids"] = self.emulator.appconfig.ids_of(region, operation, params)
        self._unrecorded = (service, operation, parsed.path, region, params)
        self._unchecked = False
        try:
            self._dispatch(service, region, operation, ids, parsed, body)
        finally:
            self._record_now(0)  # no answer was sent (an error in the emulator itself)

    _unrecorded: tuple[str, str, str, str, dict[str, Any]] | None = None
    # an error injected with a status the test chose (a 503 from a load balancer, a 400
    # throttle): deliberately outside the model, so not held to it
    _unchecked = False

    def _record_now(self, status: int) -> None:
        pending, self._unrecorded = self._unrecorded, None
        if pending is not None:
            service, operation, path, region, params = pending
            self.emulator._record(
                Recorded(
                    service, operation, self.command, status, path, time.time(), region, params
                )
            )

    def send_response(self, code: int, message: str | None = None) -> None:
        self._record_now(code)
        super().send_response(code, message)

    def _operation(
        self, service: str, method: str, path: str, body: bytes
    ) -> tuple[str, dict[str, str]]:
        if service == "aps":
            return amp_operation(method, path)
        if service in _APPCONFIG:
            return appconfig_operation(method, path)
        target = self.headers.get("X-Amz-Target", "")
        if service in _JSON_SERVICES and target:  # e.g. AmazonSSM.GetParameters
            return target.rpartition(".")[2], {}
        if service == "s3":
            key = "/" in path.strip("/")
            return _S3_OPERATIONS.get((method, key), "Unknown"), {}
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        action = (form.get("Action") or query.get("Action") or ["Unknown"])[0]
        return action, {}

    def _dispatch(
        self,
        service: str,
        region: str,
        operation: str,
        ids: dict[str, str],
        parsed: urllib.parse.SplitResult,
        body: bytes,
    ) -> None:
        em = self.emulator
        refused = em._credential_fault(service, self.headers)
        if refused is not None:
            self._error(service, 403, *refused)
            return
        for fault in em._take_faults(operation, exclude="drop_after"):
            if fault.kind == "latency":
                time.sleep(fault.seconds)
            elif fault.kind == "drop":
                self._record_now(-1)  # before the client sees the connection close
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            elif fault.kind == "deny":
                action = f"{_IAM_ACTION_PREFIX.get(service, service)}:{operation}"
                resource = f"arn:aws:{service}:{region}:{ACCOUNT_ID}:*"
                message = (
                    f"User: {fault.principal} is not authorized to perform: {action} on "
                    f"resource: {resource} because no identity-based policy allows the "
                    f"{action} action"
                )
                code = "AccessDeniedException" if service in _JSON_SERVICES else "AccessDenied"
                self._error(service, 403, code, message)
                return
            elif fault.kind == "throttle":
                json_errors = service in _JSON_SERVICES
                code = "ThrottlingException" if json_errors else "Throttling"
                default = 429 if service == "aps" or service in _APPCONFIG else 400
                status = fault.status or default
                self._unchecked = status != default  # a status the test chose
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                self._error(service, status, code, "Rate exceeded", None, headers)
                return
            elif fault.kind == "error":
                code = fault.code or server_error_code(service, operation)
                message = fault.message or "emulated server error"
                extra = required_members(code, ids.get("ws")) if service == "aps" else None
                self._unchecked = fault.status not in (None, 500)  # the test's own choice
                self._error(service, fault.status or 500, code, message, extra)
                return
        lose_response = any(f.kind == "drop_after" for f in em._take_faults(operation))
        if lose_response:
            self.wfile = Discard()  # type: ignore[assignment]  # the response is to be lost
        if service == "aps":
            self._amp(region, operation, ids, parsed, body)
        elif service == "iam" and operation == "SimulatePrincipalPolicy":
            self._simulate(body)
        elif service == "iam" and operation in PAGED_LISTS:
            self._iam_list(operation, body)
        elif service in _APPCONFIG:
            self._appconfig(service, region, operation, ids, parsed, body)
        elif service == "pricing":  # moto has no Price List: tests.harness.aws_pricing
            status, doc = get_products(body)
            self._send(status, json.dumps(doc).encode(), {"Content-Type": _AMZ_JSON})
        else:
            self._forward(body)
        if lose_response:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # -- forwarding to moto ---------------------------------------------------------------

    _held: tuple[int, list[tuple[str, str]], bytes] | None = None

    def _flush_held(self) -> None:
        if self._held is not None:
            status, headers, data = self._held
            self._held = None
            self._relay(status, headers, data)

    def _relay(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        kept = [
            (k, v)
            for k, v in headers
            if k.lower()
            not in ("content-length", "transfer-encoding", "connection", "server", "date")
        ]
        if status == 204:
            data = b""
        self._check(status, dict(kept), data)
        self.send_response(status)
        for k, v in kept:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _forward(
        self,
        body: bytes,
        rewrite: Any = None,
        hold: bool = False,
        status_as: int | None = None,
    ) -> int:
        """moto's answer to this request (with ``body``); ``rewrite`` edits a 2xx JSON body,
        ``status_as`` replaces a 2xx status (the model's), ``hold`` keeps it in _held."""
        em = self.emulator
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("connection", "content-length", "expect", "transfer-encoding")
        }
        headers["Content-Length"] = str(len(body))
        with em._moto_slots:
            conn = http.client.HTTPConnection(*em._moto_addr, timeout=60)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                resp_headers = resp.getheaders()
            finally:
                conn.close()
        if status_as is not None and 200 <= status < 300:
            status = status_as
        if rewrite is not None and 200 <= status < 300 and data:
            with contextlib.suppress(ValueError):
                data = json.dumps(rewrite(json.loads(data))).encode()
        if hold:
            self._held = (status, resp_headers, data)
            return status
        self._relay(status, resp_headers, data)
        return status
