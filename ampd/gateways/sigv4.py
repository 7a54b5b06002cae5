"""SigV4 request signing with botocore's credential chain.

Credentials come from botocore's standard chain (environment, shared config files,
IMDSv2 instance role), optionally exchanged for a role through STS AssumeRole. The
credentials *object* is kept (botocore refreshes it before expiry); frozen keys are
taken per signature, so a rotated instance-role key is picked up without a restart.

The signature itself is computed here (``sigv4_headers``) rather than by botocore's
``SigV4Auth``, which builds an ``AWSRequest`` and an ``email``-based header map for every
request (about 200 µs each, most of the proxy's CPU per request). The canonical form is
botocore's, byte for byte (a test compares the two over generated requests); the
derived signing key is kept per secret, day, region and service. Requests the fast path
does not cover (no Host header, a ``Date`` or ``X-Amz-Content-SHA256`` header) are signed
by botocore.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.auth import EMPTY_SHA256_HASH, SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    Credentials,
    DeferredRefreshableCredentials,
    RefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import normalize_url_path

from ampd.errors import TemporaryError

__all__ = ["CredentialStatus", "Signer", "SigningError", "botocore_headers", "sigv4_headers"]

ROLE_SESSION_NAME = "ampd-proxy"
# How long to wait before asking the chain again after it found nothing.
_RETRY_EMPTY_CHAIN_AFTER = 5.0


class SigningError(TemporaryError):
    """No usable credentials right now (none found, IMDS or STS unreachable, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=_RETRY_EMPTY_CHAIN_AFTER)


@dataclass(frozen=True)
class CredentialStatus:
    """What /healthz says about credentials. Never carries a secret or a token."""

    ok: bool
    method: str | None = None  # botocore's name for the source: env, iam-role, assume-role, ...
    access_key_id_suffix: str | None = None  # last four characters only
    expires_in_seconds: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "method": self.method,
            "access_key_id_suffix": self.access_key_id_suffix,
            "expires_in_seconds": self.expires_in_seconds,
            "error": self.error,
        }


_UNSIGNED = frozenset(SIGNED_HEADERS_BLACKLIST)
_SLOW_PATH = frozenset({"date", "x-amz-content-sha256"})


@functools.lru_cache(maxsize=8)
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = hmac.digest(f"AWS4{secret_key}".encode(), day.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


_stamps: tuple[int, str] = (0, "")


def _stamp_now() -> str:
    """The X-Amz-Date of this second (formatted once per second)."""
    global _stamps  # noqa: PLW0603 -- a one-entry cache; a race only formats twice
    second = int(time.time())
    if _stamps[0] != second:
        _stamps = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return _stamps[1]


class _SigV4At(SigV4Auth):
    """botocore's SigV4Auth with the signing time given instead of read from the clock
    (a proxy that corrects for clock skew signs at "now + offset")."""

    def __init__(self, creds: Credentials, service: str, region: str, stamp: str) -> None:
        super().__init__(creds, service, region)
        self._stamp = stamp

    def add_auth(self, request: AWSRequest) -> None:
        # SigV4Auth.add_auth, minus its clock read (the two helpers are not in the stubs)
        base: Any = self
        request.context["timestamp"] = self._stamp
        base._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical)
        base._inject_signature_to_request(request, self.signature(string_to_sign, request))


def botocore_headers(
    creds: Credentials,
    service: str,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """botocore's own SigV4 signature (the reference the fast path is held to)."""
    request = AWSRequest(method=method.upper(), url=url, headers=dict(headers), data=body)
    if now is None:
        SigV4Auth(creds, service, region).add_auth(request)
    else:
        _SigV4At(creds, service, region, now.strftime("%Y%m%dT%H%M%SZ")).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def sigv4_headers(
    creds: Credentials,
    service: str,
    region: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """``headers`` plus X-Amz-Date, X-Amz-Security-Token (temporary credentials) and
    Authorization, exactly as botocore's SigV4Auth would add them."""
    token = creds.token
    lowered = [(name, name.lower(), value) for name, value in headers.items()]
    if not any(low == "host" for _, low, _ in lowered) or any(
        low in _SLOW_PATH for _, low, _ in lowered
    ):
        return botocore_headers(creds, service, region, method, url, headers, body, now)
    stamp = now.strftime("%Y%m%dT%H%M%SZ") if now is not None else _stamp_now()
    drop = {"authorization", "x-amz-date"} | ({"x-amz-security-token"} if token else set())
    out = {name: value for name, low, value in lowered if low not in drop}
    out["X-Amz-Date"] = stamp
    if token:
        out["X-Amz-Security-Token"] = token

    signed: dict[str, list[str]] = {}
    for name, value in out.items():
        low = name.lower()
        if low not in _UNSIGNED:
            signed.setdefault(low, []).append(" ".join(value.split()))
    names = sorted(signed)
    signed_headers = ";".join(names)
    parts = urlsplit(url)
    query = ""
    if parts.query:
        pairs = sorted(pair.partition("=")[::2] for pair in parts.query.split("&"))
        query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical = "\n".join(
        (
            method.upper(),
            quote(normalize_url_path(parts.path), safe="/~"),
            query,
            "".join(f"{n}:{','.join(signed[n])}\n" for n in names),
            signed_headers,
            hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH,
        )
    )
    day = stamp[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = (
        f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n" + hashlib.sha256(canonical.encode()).hexdigest()
    )
    key = _signing_key(creds.secret_key, day, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out


def _default_session() -> botocore.session.Session:
    return botocore.session.get_session()


class Signer:
    """Signs HTTP requests for one AWS service and region.

    ``session_factory`` builds the botocore session whose credential chain is used; tests
    pass a session with their own credential provider. Thread-safe: the proxy signs from
    a worker thread because resolving or refreshing credentials may block on IMDS or STS.
    """

    def __init__(
        self,
        region: str,
        service: str = "aps",
        assume_role_arn: str | None = None,
        session_factory: Callable[[], botocore.session.Session] = _default_session,
    ) -> None:
        self.region = region
        self.service = service
        self.assume_role_arn = assume_role_arn
        self._session_factory = session_factory
        self._session: botocore.session.Session | None = None
        self._credentials: Credentials | None = None
        self._last_empty: float | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()

    def _resolve(self) -> Credentials:
        with self._lock:
            if self._credentials is not None:
                return self._credentials
            now = time.monotonic()
            if self._last_empty is not None and now - self._last_empty < _RETRY_EMPTY_CHAIN_AFTER:
                raise SigningError(self._last_error or "no AWS credentials found")
            try:
                if self._session is None:
                    self._session = self._session_factory()
                    if self._session.get_config_variable("region") is None:
                        # STS AssumeRole goes to the workspace's regional endpoint.
                        self._session.set_config_variable("region", self.region)
                base = self._session.get_credentials()
            except (BotoCoreError, ClientError) as e:
                self._last_empty, self._last_error = now, f"credential chain failed: {e}"
                raise SigningError(self._last_error) from e
            if base is None:
                self._last_empty = now
                self._last_error = (
                    "no AWS credentials found (environment, shared config, instance role)"
                )
                raise SigningError(self._last_error)
            creds: Credentials = base
            if self.assume_role_arn is not None:
                creds = self._assume_role(self._session, base, self.assume_role_arn)
            self._credentials, self._last_empty, self._last_error = creds, None, None
            return creds

    @staticmethod
    def _assume_role(
        session: botocore.session.Session, source: Credentials, role_arn: str
    ) -> Credentials:
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=session.create_client,
            source_credentials=source,
            role_arn=role_arn,
            extra_args={"RoleSessionName": ROLE_SESSION_NAME},
        )
        return DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method="assume-role"
        )

    def _frozen(self) -> Credentials:
        creds = self._resolve()
        try:
            # Refreshes (under botocore's own lock) when close to expiry.
            frozen = creds.get_frozen_credentials()
        except (BotoCoreError, ClientError) as e:
            self._last_error = f"credential refresh failed: {e}"
            raise SigningError(self._last_error) from e
        if not frozen.access_key or not frozen.secret_key:
            raise SigningError(f"credentials from {creds.method} have no key")
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    def needs_io(self) -> bool:
        """Whether the next ``sign()`` may block: credentials not resolved yet, or due
        for a refresh (IMDS, STS). When False, signing is pure CPU (tens of µs)."""
        creds = self._credentials
        if creds is None:
            return True
        return isinstance(creds, RefreshableCredentials) and creds.refresh_needed()

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        at: dt.datetime | None = None,
    ) -> dict[str, str]:
        """The headers to send: ``headers`` plus Authorization, X-Amz-Date and, for
        temporary credentials, X-Amz-Security-Token. ``url`` must be exactly what is
        sent (path and query already encoded). ``at``: the signing time (UTC) when it is
        not this host's clock, e.g. corrected for skew. Raises SigningError."""
        return sigv4_headers(
            self._frozen(), self.service, self.region, method, url, headers, body, at
        )

    def credential_status(self) -> CredentialStatus:
        """Resolve (and refresh if due) the credentials and describe them."""
        try:
            frozen = self._frozen()
        except SigningError as e:
            return CredentialStatus(ok=False, error=str(e))
        creds = self._credentials
        method = getattr(creds, "method", None)
        expires: float | None = None
        if isinstance(creds, RefreshableCredentials):
            expiry = getattr(creds, "_expiry_time", None)
            if expiry is not None:
                expires = round(expiry.timestamp() - time.time(), 1)
        return CredentialStatus(
            ok=True,
            method=method if isinstance(method, str) else None,
            access_key_id_suffix=frozen.access_key[-4:],
            expires_in_seconds=expires,
        )
