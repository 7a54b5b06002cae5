"""The AWS emulator's test controls (``AwsEmulator`` of ``tests/harness/aws_emulator.py``
has them from this mixin, as its request handler has its routes from ``aws_*_http``):
fault injection per operation (throttling, errors, dropped connections, latency,
AccessDenied), refused credentials (expired session tokens, a skewed clock), AMP's
transition delays, failed creations and configuration updates, list paging, and the
answers found unlike botocore's model. Every method takes the emulator's lock.
"""

from __future__ import annotations

import calendar
import threading
import time
from typing import Any

from tests.harness.aws_amp import Amp
from tests.harness.aws_http import _MAX_SKEW, _Fault
from tests.harness.aws_wire import _JSON_SERVICES, DEFAULT_PRINCIPAL


class EmulatorControls:
    """Fault injection and the other test hooks of the AWS emulator (a mixin of
    ``AwsEmulator``, which owns the state below)."""

    _lock: threading.RLock
    _amp: Amp
    _faults: list[_Fault]
    _expired_tokens: set[str]
    _skew: float
    _violations: list[str]

    # -- fault injection ----------------------------------------------------------------

    def throttle(
        self,
        operation: str | None,
        times: int | None = 1,
        status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """The next ``times`` calls of ``operation`` are throttled: aps answers 429
        ThrottlingException (the amp model's status), IAM/STS 400 ``Throttling`` (query
        protocol), unless ``status`` says otherwise; ``retry_after`` adds Retry-After."""
        self._add(_Fault("throttle", operation, times, status=status, retry_after=retry_after))

    def fail(
        self,
        operation: str | None,
        times: int | None = 1,
        status: int | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``times`` calls get the error ``code`` (default InternalServerException
        for aps, ServiceFailure for IAM/STS) with ``status`` (default 500), in the
        service's protocol. An explicit ``status`` is the test's choice: that answer is
        not held to the model (nor is an explicit throttling status)."""
        self._add(_Fault("error", operation, times, status=status, code=code, message=message))

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
            self._amp.state.creation_delay = seconds

    def transition_delay(self, seconds: float) -> None:
        """How long the other transitions last: DELETING workspaces, CREATING/UPDATING
        rule groups namespaces, alert manager definitions, logging and configuration."""
        with self._lock:
            self._amp.state.transition_delay = seconds

    def instant(self) -> None:
        """Every transition is immediate (for tests whose subject is not a transition)."""
        self.creation_delay(0.0)
        self.transition_delay(0.0)

    def fail_creations(self, times: int = 1) -> None:
        """The next ``times`` new workspaces end in CREATION_FAILED."""
        with self._lock:
            self._amp.state.fail_creations = times

    def fail_next_configuration_update(self, reason: str) -> None:
        """The next UpdateWorkspaceConfiguration ends UPDATE_FAILED with ``reason`` (the
        configuration keeps its old values)."""
        with self._lock:
            self._amp.state.fail_config.append(reason)

    def page_size(self, n: int | None) -> None:
        """Every list ampd reads answers at most ``n`` items a page (None: whole lists)."""
        with self._lock:
            self._amp.state.page_size = n

    def current_page_size(self) -> int | None:
        with self._lock:
            return self._amp.state.page_size

    def violations(self) -> list[str]:
        """Every response that did not match botocore's model of its operation."""
        with self._lock:
            return list(self._violations)

    def _violation(self, text: str) -> None:
        with self._lock:
            self._violations.append(text)

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
