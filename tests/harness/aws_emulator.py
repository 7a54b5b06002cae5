"""An AWS-compatible test endpoint: moto in server mode behind a small HTTP layer of ours.

moto (server mode, real HTTP) implements AMP workspaces, tags, alias, rule groups
namespaces and logging, and IAM/STS. It lacks, and this layer adds:

- alert manager definitions (Create/Describe/Put/Delete) and workspace configuration
  (DescribeWorkspaceConfiguration / UpdateWorkspaceConfiguration: retention),
- ``clientToken`` idempotency for CreateWorkspace (same token -> same workspace),
- ``kmsKeyArn`` kept from creation,
- a CREATING -> ACTIVE delay (writes to a workspace that is not ACTIVE get 409
  ConflictException, as from AWS) and CREATION_FAILED,
- ``prometheusEndpoint`` rewritten to a data-plane base URL: ``{base}/workspaces/{id}/``.

Everything else is forwarded to moto. Fault injection (per operation, e.g.
``"CreateWorkspace"`` or ``"CreateRole"``): throttling (400 ThrottlingException or 429),
5xx, dropped connections, added latency, AccessDenied naming the action and principal.
Credentials: ``expire_token(token)`` answers ExpiredToken(Exception) to every call signed
with that session token; ``skew(seconds)`` moves the emulator's clock, and a request whose
``X-Amz-Date`` is more than 5 minutes off it is refused as AWS does (RequestTimeTooSkewed
from S3, "Signature expired" from the others).
Every request is recorded (service, operation, HTTP method) so tests can count writes.

Standalone: ``python -m tests.harness.aws_emulator --port P --data-plane-url URL`` prints
one JSON line (``{"endpoint": ..., ...}``) and serves until SIGTERM/SIGINT. The same
controls are reachable over HTTP under ``/_emulator/`` (``GET requests``, ``POST reset``,
``POST fault`` with ``{"kind": "throttle", "operation": "...", "times": N, ...}``).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import http.client
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness.aio import run_standalone
from tests.harness.lifecycle import StartStop

ACCOUNT_ID = "123456789012"
DEFAULT_PRINCIPAL = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/ampd-test/i-0123456789abcdef0"
DEFAULT_RETENTION_DAYS = 150

_AMP_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), op)
    for m, p, op in [
        ("POST", r"^/workspaces$", "CreateWorkspace"),
        ("GET", r"^/workspaces$", "ListWorkspaces"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)$", "DescribeWorkspace"),
        ("DELETE", r"^/workspaces/(?P<ws>[^/]+)$", "DeleteWorkspace"),
        ("POST", r"^/workspaces/(?P<ws>[^/]+)/alias$", "UpdateWorkspaceAlias"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/configuration$", "DescribeWorkspaceConfiguration"),
        ("PATCH", r"^/workspaces/(?P<ws>[^/]+)/configuration$", "UpdateWorkspaceConfiguration"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/logging$", "DescribeLoggingConfiguration"),
        ("POST", r"^/workspaces/(?P<ws>[^/]+)/logging$", "CreateLoggingConfiguration"),
        ("PUT", r"^/workspaces/(?P<ws>[^/]+)/logging$", "UpdateLoggingConfiguration"),
        ("DELETE", r"^/workspaces/(?P<ws>[^/]+)/logging$", "DeleteLoggingConfiguration"),
        ("GET", r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces$", "ListRuleGroupsNamespaces"),
        ("POST", r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces$", "CreateRuleGroupsNamespace"),
        (
            "GET",
            r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces/[^/]+$",
            "DescribeRuleGroupsNamespace",
        ),
        (
            "PUT",
            r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces/[^/]+$",
            "PutRuleGroupsNamespace",
        ),
        (
            "DELETE",
            r"^/workspaces/(?P<ws>[^/]+)/rulegroupsnamespaces/[^/]+$",
            "DeleteRuleGroupsNamespace",
        ),
        (
            "GET",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "DescribeAlertManagerDefinition",
        ),
        (
            "POST",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "CreateAlertManagerDefinition",
        ),
        (
            "PUT",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "PutAlertManagerDefinition",
        ),
        (
            "DELETE",
            r"^/workspaces/(?P<ws>[^/]+)/alertmanager/definition$",
            "DeleteAlertManagerDefinition",
        ),
        ("GET", r"^/tags/.+$", "ListTagsForResource"),
        ("POST", r"^/tags/.+$", "TagResource"),
        ("DELETE", r"^/tags/.+$", "UntagResource"),
    ]
]
_READ_PREFIXES = ("Describe", "List", "Get", "Head", "Simulate")
# services whose errors are JSON (aps: REST-JSON; ssm: JSON 1.1 with X-Amz-Target)
_JSON_SERVICES = frozenset({"aps", "ssm"})
# path-style S3: (method, has a key) -> operation, for recording and fault injection
_S3_OPERATIONS = {
    ("GET", True): "GetObject",
    ("HEAD", True): "HeadObject",
    ("PUT", True): "PutObject",
    ("DELETE", True): "DeleteObject",
    ("PUT", False): "CreateBucket",
    ("GET", False): "ListObjects",
}
# Reads and deletes are allowed on a workspace that is not ACTIVE; other writes conflict.
_ALLOWED_WHILE_BUSY = frozenset({"DeleteWorkspace"})
_MAX_SKEW = 300.0  # SigV4: a signature more than 5 minutes off the server's clock is refused
_CREDENTIAL_RE = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")
_IAM_ACTION_PREFIX = {"aps": "aps", "iam": "iam", "sts": "sts"}


def _keep_only_amp_managed_policies() -> None:
    """moto builds its IAM backend, with all ~1,600 AWS managed policies it knows, after
    every reset, on the first request that follows (about 0.3 s of one core, several
    seconds on a loaded machine: enough to run a client into its read timeout). ampd
    attaches only the Amazon Prometheus ones, so only those are kept."""
    import moto.iam.models as iam_models  # noqa: PLC0415 (heavy import, on demand)
    from moto.iam.aws_managed_policies import aws_managed_policies_data  # noqa: PLC0415

    catalogue = json.loads(aws_managed_policies_data)
    kept = {name: doc for name, doc in catalogue.items() if name.startswith(_MANAGED_KEPT)}
    # the name moto's IAM backend reads the catalogue from
    iam_models.aws_managed_policies_data = json.dumps(kept)  # type: ignore[attr-defined]


_MANAGED_KEPT = "AmazonPrometheus"


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
        return not self.operation.startswith(_READ_PREFIXES)


@dataclass
class _Fault:
    kind: str  # throttle | error | drop | deny | latency
    operation: str | None  # None: every operation
    times: int | None = 1  # None: until cleared
    status: int = 400
    seconds: float = 0.0
    principal: str = DEFAULT_PRINCIPAL


@dataclass
class _Workspace:
    kms_key_arn: str | None = None
    ready_at: float = 0.0
    failed: bool = False
    retention_days: int = DEFAULT_RETENTION_DAYS
    alertmanager: dict[str, Any] | None = None


@dataclass
class _State:
    tokens: dict[str, str] = field(default_factory=dict)
    workspaces: dict[str, _Workspace] = field(default_factory=dict)
    creation_delay: float = 0.0
    fail_creations: int = 0


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a dropped-connection fault, a timed-out caller) is normal
    here: no traceback on stderr, where it would mix with what a test reads."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class AwsEmulator(StartStop):
    """moto server + our layer. ``endpoint`` is what AWS_ENDPOINT_URL should point at."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_plane_url: str | None = None,
        moto_concurrency: int = 64,
    ) -> None:
        self.host = host
        self._port = port
        self.data_plane_url = data_plane_url.rstrip("/") if data_plane_url else None
        self._lock = threading.RLock()
        self._create_lock = threading.Lock()
        self._state = _State()
        self._faults: list[_Fault] = []
        self._expired_tokens: set[str] = set()
        self._skew = 0.0
        self._requests: list[Recorded] = []
        self._moto: Any = None
        self._moto_addr: tuple[str, int] = ("127.0.0.1", 0)
        self._moto_slots = threading.BoundedSemaphore(moto_concurrency)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> AwsEmulator:
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _keep_only_amp_managed_policies()
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 (heavy import, on demand)

        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        self._moto_addr = self._moto.get_host_and_port()
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        server = _QuietServer((self.host, self._port), Handler, bind_and_activate=False)
        server.daemon_threads = True
        server.request_queue_size = 1024
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="aws-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def moto_endpoint(self) -> str:
        return f"http://{self._moto_addr[0]}:{self._moto_addr[1]}"

    def reset(self) -> None:
        """Forget every resource, fault and recorded request."""
        conn = http.client.HTTPConnection(*self._moto_addr, timeout=60)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()
        with self._lock:
            self._state = _State()
            self._faults.clear()
            self._requests.clear()
            self._expired_tokens.clear()
            self._skew = 0.0

    # -- fault injection ----------------------------------------------------------------

    def throttle(self, operation: str | None, times: int | None = 1, status: int = 400) -> None:
        """The next ``times`` calls of ``operation`` get ThrottlingException (or 429)."""
        self._add(_Fault("throttle", operation, times, status=status))

    def fail(self, operation: str | None, times: int | None = 1, status: int = 500) -> None:
        """The next ``times`` calls get an InternalServerException with ``status``."""
        self._add(_Fault("error", operation, times, status=status))

    def drop(self, operation: str | None, times: int | None = 1, *, after: bool = False) -> None:
        """The next ``times`` calls get their connection closed without a response;
        with ``after=True`` the request is served first (the response is what is lost)."""
        self._add(_Fault("drop_after" if after else "drop", operation, times))

    def latency(
        self, seconds: float, operation: str | None = None, times: int | None = None
    ) -> None:
        self._add(_Fault("latency", operation, times, seconds=seconds))

    def deny(
        self, operation: str, principal: str = DEFAULT_PRINCIPAL, times: int | None = None
    ) -> None:
        """AccessDenied for ``operation`` (until ``allow``), naming action and principal."""
        self._add(_Fault("deny", operation, times, status=403, principal=principal))

    def allow(self, operation: str) -> None:
        with self._lock:
            self._faults = [
                f for f in self._faults if not (f.kind == "deny" and f.operation == operation)
            ]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def expire_token(self, session_token: str) -> None:
        """Every later call signed with ``session_token`` is refused as expired."""
        with self._lock:
            self._expired_tokens.add(session_token)

    def skew(self, seconds: float) -> None:
        """The emulator's clock runs ``seconds`` ahead of the host's (0: in step)."""
        with self._lock:
            self._skew = seconds

    def _credential_fault(self, service: str, headers: Any) -> tuple[str, str] | None:
        """(code, message) when AWS would refuse the request's signature, else None."""
        with self._lock:
            expired = headers.get("X-Amz-Security-Token") in self._expired_tokens
            now = time.time() + self._skew
        if expired:
            code = "ExpiredTokenException" if service in _JSON_SERVICES else "ExpiredToken"
            return code, "The security token included in the request is expired"
        stamp = headers.get("X-Amz-Date")
        if not stamp:
            return None
        try:
            signed = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None
        if abs(now - signed) <= _MAX_SKEW:
            return None
        server = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        if service == "s3":
            return "RequestTimeTooSkewed", (
                "The difference between the request time and the current time is too large."
            )
        message = f"Signature expired: {stamp} is now earlier than {server} ({server} - 5 min.)"
        if signed > now:
            message = f"Signature not yet current: {stamp} is still later than {server}"
        code = "InvalidSignatureException" if service in _JSON_SERVICES else "SignatureDoesNotMatch"
        return code, message

    def creation_delay(self, seconds: float) -> None:
        """New workspaces stay CREATING this long before they become ACTIVE."""
        with self._lock:
            self._state.creation_delay = seconds

    def fail_creations(self, times: int = 1) -> None:
        """The next ``times`` new workspaces end in CREATION_FAILED."""
        with self._lock:
            self._state.fail_creations = times

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_faults(self, operation: str, exclude: str | None = None) -> list[_Fault]:
        out: list[_Fault] = []
        with self._lock:
            for f in list(self._faults):
                if f.operation not in (None, operation) or f.kind == exclude:
                    continue
                if exclude is None and f.kind != "drop_after":
                    continue
                out.append(f)
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
        return out

    # -- recorded requests ----------------------------------------------------------------

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.is_write]

    def calls(self, operation: str) -> int:
        return sum(1 for r in self.requests if r.operation == operation)

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)

    # -- workspace state ----------------------------------------------------------------

    def workspace_status(self, ws_id: str) -> str:
        with self._lock:
            ws = self._state.workspaces.get(ws_id)
        if ws is None:
            return "ACTIVE"
        if ws.failed:
            return "CREATION_FAILED"
        return "CREATING" if time.monotonic() < ws.ready_at else "ACTIVE"

    def principal_policies(self, arn: str) -> tuple[list[str], str | None] | None:
        """The identity policies (inline and attached, as JSON) and the permissions boundary
        of the role or user ``arn`` in moto's IAM, or None when there is no such principal."""
        from moto.iam.models import iam_backends  # noqa: PLC0415 (moto's in-process state)

        backend = iam_backends[ACCOUNT_ID][arn.split(":")[1]]
        kind, _, name = arn.partition(":iam::")[2].partition(":")[2].partition("/")
        name = name.rpartition("/")[2]
        principal: Any
        if kind == "role":
            principal = next((r for r in backend.roles.values() if r.name == name), None)
        elif kind == "user":
            principal = backend.users.get(name)
        else:
            principal = None
        if principal is None:
            return None

        def document(policy: Any) -> str:
            return str(
                next(
                    v.document for v in policy.versions if v.version_id == policy.default_version_id
                )
            )

        docs = [str(doc) for doc in principal.policies.values()]
        docs += [document(p) for p in principal.managed_policies.values()]
        boundary: str | None = None
        boundary_arn = getattr(principal, "permissions_boundary_arn", None)
        if boundary_arn:
            boundary = document(backend.get_policy(boundary_arn))
        return docs, boundary

    def iam_context(self, region: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """What IAM knows of the role or instance profile a request names, at the time of
        the request: its tags (``aws:ResourceTag/...``) and a role's permissions boundary
        (``iam:PermissionsBoundary``). Empty when it does not exist (yet)."""
        from moto.iam.models import iam_backends  # noqa: PLC0415 (moto's in-process state)

        part = "aws-cn" if region.startswith("cn-") else "aws"
        part = "aws-us-gov" if region.startswith("us-gov-") else part
        backend = iam_backends[ACCOUNT_ID][part]
        out: dict[str, Any] = {}
        if params.get("RoleName"):
            role = next((r for r in backend.roles.values() if r.name == params["RoleName"]), None)
            if role is not None:
                out["role"] = {
                    f"aws:ResourceTag/{t['Key']}": t["Value"] for t in _moto_tags(role.tags)
                }
                if role.permissions_boundary_arn:
                    out["role"]["iam:PermissionsBoundary"] = role.permissions_boundary_arn
        if params.get("InstanceProfileName"):
            profile = backend.instance_profiles.get(params["InstanceProfileName"])
            if profile is not None:
                out["instance_profile"] = {
                    f"aws:ResourceTag/{t['Key']}": t["Value"] for t in _moto_tags(profile.tags)
                }
        return out

    def _backend(self, region: str) -> Any:
        from moto.amp.models import amp_backends  # noqa: PLC0415 (moto's in-process state)

        return amp_backends[ACCOUNT_ID][region]

    def workspace_ids(self, region: str = "eu-west-1") -> list[str]:
        """Every workspace in ``region`` (straight from moto's state, not recorded)."""
        return sorted(self._backend(region).workspaces)

    def endpoint_for(self, ws_id: str, region: str) -> str:
        if self.data_plane_url:
            return f"{self.data_plane_url}/workspaces/{ws_id}/"
        return f"https://aps-workspaces.{region}.amazonaws.com/workspaces/{ws_id}/"

    def client(self, service: str, region: str = "eu-west-1") -> Any:
        """A boto3 client for out-of-band changes in tests (its calls are recorded too)."""
        import boto3  # noqa: PLC0415 (only tests need it)

        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


class _Handler(BaseHTTPRequestHandler):
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
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: dict[str, Any]) -> None:
        self._send(status, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def _error(self, service: str, status: int, code: str, message: str) -> None:
        if service == "s3":  # REST-XML, no envelope
            xml = f"<Error><Code>{code}</Code><Message>{_xml(message)}</Message></Error>"
            self._send(status, xml.encode(), {"Content-Type": "application/xml"})
            return
        if service in _JSON_SERVICES:
            body = json.dumps({"message": message, "__type": code}).encode()
            headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
            self._send(status, body, headers)
            return
        xml = (
            f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/2010-05-08/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(message)}</Message>"
            "</Error><RequestId>emulated</RequestId></ErrorResponse>"
        )
        self._send(status, xml.encode(), {"Content-Type": "text/xml"})

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path.startswith("/_emulator/"):
            self._control(parsed.path, body)
            return
        auth = self.headers.get("Authorization", "")
        m = _CREDENTIAL_RE.search(auth)
        region = m.group(2) if m else "us-east-1"
        service = m.group(3) if m else "unknown"
        operation, ws_id = self._operation(service, self.command, parsed.path, body)
        # Recorded when the status line is produced (send_response), before the client can
        # see an answer: a test that reads the log right after its call returns finds it.
        params = _params(service, parsed, body)
        if service == "iam":
            with contextlib.suppress(Exception):  # best effort: never fail the request
                params["_context"] = self.emulator.iam_context(region, params)
        self._unrecorded = (service, operation, parsed.path, region, params)
        try:
            self._dispatch(service, region, operation, ws_id, parsed, body)
        finally:
            self._record_now(0)  # no answer was sent (an error in the emulator itself)

    _unrecorded: tuple[str, str, str, str, dict[str, Any]] | None = None

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
    ) -> tuple[str, str | None]:
        if service == "aps":
            for m, pattern, op in _AMP_ROUTES:
                hit = pattern.match(path) if m == method else None
                if hit:
                    return op, hit.groupdict().get("ws")
            return "Unknown", None
        target = self.headers.get("X-Amz-Target", "")
        if service in _JSON_SERVICES and target:  # e.g. AmazonSSM.GetParameters
            return target.rpartition(".")[2], None
        if service == "s3":
            key = "/" in path.strip("/")
            return _S3_OPERATIONS.get((method, key), "Unknown"), None
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="replace"))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        action = (form.get("Action") or query.get("Action") or ["Unknown"])[0]
        return action, None

    def _dispatch(
        self,
        service: str,
        region: str,
        operation: str,
        ws_id: str | None,
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
                code = "ThrottlingException" if service in _JSON_SERVICES else "Throttling"
                self._error(service, fault.status, code, "Rate exceeded")
                return
            elif fault.kind == "error":
                code = "InternalServerException" if service in _JSON_SERVICES else "ServiceFailure"
                self._error(service, fault.status, code, "emulated server error")
                return
        lose_response = any(f.kind == "drop_after" for f in em._take_faults(operation))
        if lose_response:
            self.wfile = _Discard()  # type: ignore[assignment]  # the response is to be lost
        if service == "aps":
            self._amp(region, operation, ws_id, parsed, body)
        elif service == "iam" and operation == "SimulatePrincipalPolicy":
            self._simulate(body)
        else:
            self._forward(body)
        if lose_response:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # -- IAM: what moto lacks -------------------------------------------------------------

    def _simulate(self, body: bytes) -> None:
        """``iam:SimulatePrincipalPolicy`` (moto has none): the principal's inline and
        attached policies, and its permissions boundary, evaluated by
        ``tests.harness.iam_eval`` for each action on each resource."""
        from tests.harness.iam_eval import Request, decide  # noqa: PLC0415 (only here)

        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        source = form.get("PolicySourceArn", "")
        actions = _members(form, "ActionNames")
        resources = _members(form, "ResourceArns") or ["*"]
        found = self.emulator.principal_policies(source)
        if found is None:
            message = f"The principal {source} cannot be found."
            self._error("iam", 404, "NoSuchEntity", message)
            return
        policies, boundary = found
        members = []
        for action in actions:
            for resource in resources:
                decision = decide(policies, Request(action, resource), boundary)
                members.append(
                    "<member>"
                    f"<EvalActionName>{_xml(action)}</EvalActionName>"
                    f"<EvalResourceName>{_xml(resource)}</EvalResourceName>"
                    f"<EvalDecision>{decision}</EvalDecision>"
                    "<MatchedStatements/><MissingContextValues/>"
                    "</member>"
                )
        xml = (
            '<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
            "<SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>"
            f"<EvaluationResults>{''.join(members)}</EvaluationResults>"
            "</SimulatePrincipalPolicyResult>"
            "<ResponseMetadata><RequestId>emulated</RequestId></ResponseMetadata>"
            "</SimulatePrincipalPolicyResponse>"
        )
        self._send(200, xml.encode(), {"Content-Type": "text/xml"})

    # -- AMP: what moto lacks -------------------------------------------------------------

    def _amp(
        self,
        region: str,
        operation: str,
        ws_id: str | None,
        parsed: urllib.parse.SplitResult,
        body: bytes,
    ) -> int:
        em = self.emulator
        if operation == "CreateWorkspace":
            return self._create_workspace(region, body)
        if ws_id is not None:
            exists = ws_id in em._backend(region).workspaces
            if not exists:
                if operation in (
                    "DescribeWorkspaceConfiguration",
                    "UpdateWorkspaceConfiguration",
                ) or ("AlertManager" in operation):
                    self._error("aps", 404, "ResourceNotFoundException", "Workspace not found")
                    return 404
            elif (
                not operation.startswith(_READ_PREFIXES)
                and operation not in _ALLOWED_WHILE_BUSY
                and em.workspace_status(ws_id) != "ACTIVE"
            ):
                message = f"Workspace {ws_id} is {em.workspace_status(ws_id)}"
                self._error("aps", 409, "ConflictException", message)
                return 409
            local_ops = ("DescribeWorkspaceConfiguration", "UpdateWorkspaceConfiguration")
            if exists and (operation in local_ops or "AlertManager" in operation):
                return self._local_amp(operation, ws_id, body)
        if operation == "DeleteWorkspace" and ws_id is not None:
            status = self._forward(body)
            with em._lock:
                em._state.workspaces.pop(ws_id, None)
                em._state.tokens = {t: w for t, w in em._state.tokens.items() if w != ws_id}
            return status
        if operation in ("DescribeWorkspace", "ListWorkspaces"):
            return self._forward(body, rewrite=lambda doc: self._patch_workspaces(doc, region))
        return self._forward(body)

    def _create_workspace(self, region: str, body: bytes) -> int:
        em = self.emulator
        params = json.loads(body or b"{}")
        token = params.get("clientToken")
        with em._create_lock:
            with em._lock:
                existing = em._state.tokens.get(token) if token else None
            backend = em._backend(region)
            if existing is not None and existing in backend.workspaces:
                ws = backend.workspaces[existing]
                doc = {
                    "workspaceId": existing,
                    "arn": ws.arn,
                    "status": {"statusCode": em.workspace_status(existing)},
                    "tags": backend.list_tags_for_resource(ws.arn),
                }
                if em._state.workspaces.get(existing, _Workspace()).kms_key_arn:
                    doc["kmsKeyArn"] = em._state.workspaces[existing].kms_key_arn
                self._json(202, doc)
                return 202
            box: dict[str, Any] = {}

            def capture(doc: dict[str, Any]) -> dict[str, Any]:
                box.update(doc)
                return doc

            status = self._forward(body, rewrite=capture, hold=True)
            if status >= 300 or "workspaceId" not in box:
                self._flush_held()
                return status
            ws_id = str(box["workspaceId"])
            with em._lock:
                state = _Workspace(kms_key_arn=params.get("kmsKeyArn"))
                state.ready_at = time.monotonic() + em._state.creation_delay
                if em._state.fail_creations > 0:
                    em._state.fail_creations -= 1
                    state.failed = True
                em._state.workspaces[ws_id] = state
                if token:
                    em._state.tokens[token] = ws_id
            doc = {
                "workspaceId": ws_id,
                "arn": box.get("arn"),
                "status": {"statusCode": em.workspace_status(ws_id)},
                "tags": box.get("tags") or {},
            }
            if state.kms_key_arn:
                doc["kmsKeyArn"] = state.kms_key_arn
            self._held = None
            self._json(202, doc)
            return 202

    def _patch_workspaces(self, doc: dict[str, Any], region: str) -> dict[str, Any]:
        em = self.emulator
        items = [doc["workspace"]] if "workspace" in doc else list(doc.get("workspaces") or [])
        for w in items:
            ws_id = str(w.get("workspaceId"))
            w["status"] = {"statusCode": em.workspace_status(ws_id)}
            w["prometheusEndpoint"] = em.endpoint_for(ws_id, region)
            with em._lock:
                local = em._state.workspaces.get(ws_id)
            if local is not None and local.kms_key_arn:
                w["kmsKeyArn"] = local.kms_key_arn
        return doc

    def _local_amp(self, operation: str, ws_id: str, body: bytes) -> int:
        em = self.emulator
        params = json.loads(body or b"{}")
        now = time.time()
        with em._lock:
            ws = em._state.workspaces.setdefault(ws_id, _Workspace())
            if operation == "DescribeWorkspaceConfiguration":
                doc: dict[str, Any] = {
                    "workspaceConfiguration": {
                        "status": {"statusCode": "ACTIVE"},
                        "retentionPeriodInDays": ws.retention_days,
                        "limitsPerLabelSet": [],
                    }
                }
                status = 200
            elif operation == "UpdateWorkspaceConfiguration":
                days = params.get("retentionPeriodInDays")
                if days is not None:
                    if not 1 <= int(days) <= 1095:
                        self._error("aps", 400, "ValidationException", "retention out of range")
                        return 400
                    ws.retention_days = int(days)
                doc, status = {"status": {"statusCode": "UPDATING"}}, 202
            elif operation == "DescribeAlertManagerDefinition":
                if ws.alertmanager is None:
                    self._error(
                        "aps",
                        404,
                        "ResourceNotFoundException",
                        "Alert manager definition not found",
                    )
                    return 404
                doc, status = {"alertManagerDefinition": dict(ws.alertmanager)}, 200
            elif operation == "CreateAlertManagerDefinition":
                if ws.alertmanager is not None:
                    self._error("aps", 409, "ConflictException", "definition already exists")
                    return 409
                ws.alertmanager = {
                    "status": {"statusCode": "ACTIVE"},
                    "data": params.get("data", ""),
                    "createdAt": now,
                    "modifiedAt": now,
                }
                doc, status = {"status": {"statusCode": "CREATING"}}, 202
            elif operation == "PutAlertManagerDefinition":
                if ws.alertmanager is None:
                    self._error(
                        "aps",
                        404,
                        "ResourceNotFoundException",
                        "Alert manager definition not found",
                    )
                    return 404
                ws.alertmanager = {
                    **ws.alertmanager,
                    "data": params.get("data", ""),
                    "modifiedAt": now,
                }
                doc, status = {"status": {"statusCode": "UPDATING"}}, 202
            else:  # DeleteAlertManagerDefinition
                if ws.alertmanager is None:
                    self._error(
                        "aps",
                        404,
                        "ResourceNotFoundException",
                        "Alert manager definition not found",
                    )
                    return 404
                ws.alertmanager = None
                doc, status = {}, 202
        self._json(status, doc)
        return status

    # -- forwarding to moto ---------------------------------------------------------------

    _held: tuple[int, list[tuple[str, str]], bytes] | None = None

    def _flush_held(self) -> None:
        if self._held is not None:
            status, headers, data = self._held
            self._held = None
            self._relay(status, headers, data)

    def _relay(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
                "server",
                "date",
            ):
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
    ) -> int:
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
        if rewrite is not None and 200 <= status < 300 and data:
            with contextlib.suppress(ValueError):
                data = json.dumps(rewrite(json.loads(data))).encode()
        if hold:
            self._held = (status, resp_headers, data)
            return status
        self._relay(status, resp_headers, data)
        return status

    # -- control API (standalone use) -----------------------------------------------------

    def _control(self, path: str, body: bytes) -> None:
        em = self.emulator
        name = path.removeprefix("/_emulator/")
        if name == "requests" and self.command == "GET":
            self._json(
                200,
                {
                    "requests": [
                        {
                            "service": r.service,
                            "operation": r.operation,
                            "method": r.method,
                            "status": r.status,
                            "write": r.is_write,
                        }
                        for r in em.requests
                    ]
                },
            )
        elif name == "reset" and self.command == "POST":
            em.reset()
            self._json(200, {})
        elif name == "fault" and self.command == "POST":
            spec = json.loads(body or b"{}")
            kind = spec.get("kind")
            op = spec.get("operation")
            times = spec.get("times", 1)
            if kind == "throttle":
                em.throttle(op, times, int(spec.get("status", 400)))
            elif kind == "error":
                em.fail(op, times, int(spec.get("status", 500)))
            elif kind == "drop":
                em.drop(op, times, after=bool(spec.get("after", False)))
            elif kind == "latency":
                em.latency(float(spec.get("seconds", 1.0)), op, times)
            elif kind == "deny":
                em.deny(op, spec.get("principal", DEFAULT_PRINCIPAL), times)
            elif kind == "creation_delay":
                em.creation_delay(float(spec.get("seconds", 0)))
            elif kind == "clear":
                em.clear_faults()
            else:
                self._json(400, {"message": f"unknown fault kind {kind!r}"})
                return
            self._json(200, {})
        else:
            self._json(404, {"message": f"no control endpoint {name!r}"})


def _moto_tags(tags: Any) -> list[dict[str, str]]:
    """moto keeps IAM tags as a list of {Key, Value} or a dict of key -> {Key, Value}."""
    if isinstance(tags, dict):
        return [{"Key": str(k), "Value": str(v.get("Value", ""))} for k, v in tags.items()]
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags or []]


def _members(form: Mapping[str, str], name: str) -> list[str]:
    """A query-protocol list (``Name.member.1``, ``Name.member.2``, ...), in order."""
    found = []
    for key, value in form.items():
        prefix, _, index = key.rpartition(".member.")
        if prefix == name and index.isdigit():
            found.append((int(index), value))
    return [v for _, v in sorted(found)]


def _params(service: str, parsed: urllib.parse.SplitResult, body: bytes) -> dict[str, Any]:
    """What a request asked for, for the record: the form of a query-protocol call, the
    JSON body of the others (when it is JSON), and the URL's query string."""
    out: dict[str, Any] = {}
    query = urllib.parse.parse_qs(parsed.query)
    if query:
        out["query"] = {k: v[0] for k, v in query.items()}
    if service in ("iam", "sts"):
        out.update(
            {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        )
        return out
    if body[:1] == b"{":
        with contextlib.suppress(ValueError):
            doc = json.loads(body)
            if isinstance(doc, dict):
                out.update(doc)
    return out


class _Discard:
    """Stands in for the socket's write side when a response is to be lost."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-plane-url", default=None)
    parser.add_argument("--creation-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    em = AwsEmulator(host=args.host, port=args.port, data_plane_url=args.data_plane_url)

    def start() -> dict[str, Any]:
        em.start()
        em.creation_delay(args.creation_delay)
        return {
            "endpoint": em.endpoint,
            "moto_endpoint": em.moto_endpoint,
            "data_plane_url": em.data_plane_url,
            "account_id": ACCOUNT_ID,
            "pid": os.getpid(),
        }

    return run_standalone(start, em.stop)


if __name__ == "__main__":
    raise SystemExit(main())
