"""An AWS-compatible test endpoint: moto in server mode behind a small HTTP layer of ours.

moto (server mode, real HTTP) keeps AMP workspaces (their tags and alias) and IAM/STS.
Our layer makes the answers those of AWS as botocore's service models describe them:

- AMP (``tests.harness.aws_amp``, routes in ``aws_amp_http``): workspaces are CREATING for
  ``creation_delay`` then ACTIVE (or CREATION_FAILED), DELETING for ``transition_delay``
  then gone; writes to a workspace that is not ACTIVE get 409 ConflictException. Rule
  groups namespaces, alert manager definitions, logging and workspace configuration are
  ours: CREATING/UPDATING for ``transition_delay``, then ACTIVE or *_FAILED with AMP's
  ``statusReason`` (rule and alert manager data are validated as AMP does); a missing
  logging configuration is a 404; ``clientToken`` idempotency and ``kmsKeyArn`` on
  CreateWorkspace; every 2xx has the model's status code (202, 204); ListWorkspaces'
  ``alias`` is a prefix; ``prometheusEndpoint`` (descriptions only) points at the data
  plane: ``{base}/workspaces/{id}/``. ``DEFAULT_DELAY`` is the default of both delays;
  ``instant()`` makes every transition immediate.
- IAM (``aws_iam_pages``): SimulatePrincipalPolicy (moto has none) and AWS's paging of the
  lists ampd reads (``page_size(n)``, or the caller's MaxItems/maxResults).
- AppConfig (``aws_appconfig*``; both services sign as ``appconfig``, the Data API is
  told apart by its paths and recorded and checked as ``appconfigdata``): moto keeps
  applications, configuration profiles (Validator Content over the model's 32768 is
  refused) and hosted versions; ours are environments (Monitors), deployment strategies
  (AWS's predefined ``AppConfig.*`` ones too), deployments (validators run first:
  JSON_SCHEMA as draft-04, YAML content parsed as YAML; DEPLOYING -> BAKING -> COMPLETE
  by the strategy's steps; StopDeployment -> ROLLED_BACK, or REVERTED with AllowRevert)
  and the Data API (sessions by names or ids; single-use tokens valid 24 h; an unchanged
  poll has an empty body; an early poll is refused with PollIntervalNotSatisfied). Its
  hooks are ``em.appconfig``: ``hold(on, app=None, env=None, number=None)``, ``step(app,
  env, deployment_number=None)``, ``set_alarm(arn, state)`` (``ALARM`` rolls back the
  deployments of environments monitoring it), ``minute_seconds(s)`` (one AppConfig
  minute, default 60), ``advance(seconds)`` (AppConfig's clock), ``refuse_early(on)``,
  ``poll_interval(seconds)`` (the interval every poll answer gives, for fast fleets),
  ``sessions()``, ``early_polls()``. A session is admitted to an in-progress
  deployment's version in poll order while fewer than ``ceil(p% * active sessions)`` are.
- Every response is held to botocore's model by ``tests.harness.model_check``;
  ``violations()`` lists where it differed (the ``aws_emulator`` fixture fails the test).

Fault injection (``aws_emulator_faults``; per operation, e.g. ``"CreateWorkspace"``):
throttling (429 ThrottlingException with an optional Retry-After for aps, 400 Throttling
for IAM/STS), errors with a code (``fail(op, status=409, code="ConcurrentModification")``),
a failed configuration update, dropped connections, added latency, AccessDenied naming the
action and principal. Credentials: ``expire_token(token)`` answers ExpiredToken(Exception)
to every call signed with that session token; ``skew(seconds)`` moves the emulator's
clock, and a request whose ``X-Amz-Date`` is more than 5 minutes off it is refused as AWS
does (RequestTimeTooSkewed from S3, "Signature expired" from the others).
Every request is recorded (service, operation, HTTP method) so tests can count writes.

Standalone: ``python -m tests.harness.aws_emulator --port P --data-plane-url URL`` prints
one JSON line (``{"endpoint": ..., ...}``) and serves until SIGTERM/SIGINT. The same
controls are reachable over HTTP under ``/_emulator/`` (``GET requests``, ``GET
violations``, ``POST reset``, ``POST fault`` with ``{"kind": "throttle", "operation":
"...", "times": N, "retry_after": S}``; kinds: throttle, error (status, code, message),
drop, latency, deny, creation_delay, transition_delay, instant, page_size (size),
fail_configuration_update (reason), clear). AppConfig's hooks are under
``/_emulator/appconfig/``: ``POST hold`` ``{"on", "app", "env", "deployment_number"}``,
``POST step`` ``{"app", "env", "deployment_number"}`` (answers the deployment),
``POST alarm`` ``{"arn", "state"}``, ``POST minute_seconds`` ``{"seconds"}``, ``POST
advance`` ``{"seconds"}``, ``POST poll_interval`` ``{"seconds"}``, ``POST refuse_early``
``{"on"}``, ``GET sessions``, ``GET
early_polls``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.harness.aio import run_standalone
from tests.harness.aws_amp import DEFAULT_DELAY, Amp
from tests.harness.aws_appconfig import AppConfig
from tests.harness.aws_emulator_faults import EmulatorControls
from tests.harness.aws_http import Handler, Recorded, _Fault, _QuietServer
from tests.harness.aws_iam_pages import iam_context, principal_policies
from tests.harness.aws_wire import ACCOUNT_ID, DEFAULT_PRINCIPAL
from tests.harness.lifecycle import StartStop

__all__ = ["ACCOUNT_ID", "DEFAULT_DELAY", "DEFAULT_PRINCIPAL", "AwsEmulator", "Recorded"]


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


class AwsEmulator(EmulatorControls, StartStop):
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
        self._amp = Amp(self._lock, lambda region: f"arn:aws:aps:{region}:{ACCOUNT_ID}")
        self.appconfig = AppConfig(self._lock)  # AppConfig's state and test hooks
        self._violations: list[str] = []
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

        class Bound(Handler):
            pass

        Bound.emulator = emulator
        server = _QuietServer((self.host, self._port), Bound, bind_and_activate=False)
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

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """``with AwsEmulator() as em:`` (box tests, benchmarks) stops it, and then fails
        when it answered unlike botocore's model (unless the block already failed)."""
        self.stop()
        found = self.violations()
        if exc_type is None and found:
            raise AssertionError(
                "the AWS emulator answered unlike botocore's model:\n" + "\n".join(found)
            )

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
            self._amp = Amp(self._lock, lambda region: f"arn:aws:aps:{region}:{ACCOUNT_ID}")
            self.appconfig.reset()
            self._violations.clear()
            self._faults.clear()
            self._requests.clear()
            self._expired_tokens.clear()
            self._skew = 0.0

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
            ws = self._amp.state.workspaces.get(ws_id)
        if ws is None:
            return "ACTIVE"
        if ws.gone_at is not None:
            return "DELETING"
        return ws.phase.now()[0]

    def sweep(self) -> None:
        """Workspaces whose DELETING is over leave moto (and our state)."""
        now = time.monotonic()
        with self._lock:
            state = self._amp.state
            done = [
                (i, w.region)
                for i, w in state.workspaces.items()
                if w.gone_at is not None and w.gone_at <= now
            ]
            for ws_id, _ in done:
                del state.workspaces[ws_id]
                state.tokens = {t: w for t, w in state.tokens.items() if w != ws_id}
        for ws_id, region in done:
            backend = self._backend(region)
            if ws_id in backend.workspaces:
                backend.delete_workspace(ws_id)

    def principal_policies(self, arn: str) -> tuple[list[str], str | None] | None:
        """The identity policies (inline and attached, as JSON) and the permissions boundary
        of the role or user ``arn`` in moto's IAM, or None when there is no such principal."""
        return principal_policies(arn)

    def iam_context(self, region: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """What IAM knows of the role or instance profile a request names (tags, boundary)."""
        return iam_context(region, params)

    def _backend(self, region: str) -> Any:
        from moto.amp.models import amp_backends  # noqa: PLC0415 (moto's in-process state)

        return amp_backends[ACCOUNT_ID][region]

    def workspace_ids(self, region: str = "eu-west-1") -> list[str]:
        """Every workspace in ``region`` (straight from moto's state, not recorded)."""
        self.sweep()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-plane-url", default=None)
    parser.add_argument("--creation-delay", type=float, default=DEFAULT_DELAY)
    parser.add_argument("--transition-delay", type=float, default=DEFAULT_DELAY)
    args = parser.parse_args(argv)
    em = AwsEmulator(host=args.host, port=args.port, data_plane_url=args.data_plane_url)

    def start() -> dict[str, Any]:
        em.start()
        em.creation_delay(args.creation_delay)
        em.transition_delay(args.transition_delay)
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
