"""AWS's SigV4 check of a header-signed request, as the data-plane stand-in of
``tests/harness/dataplane.py`` makes it: the signature is recomputed with botocore
(canonical request over method, path, query, signed headers and the hash of the body
actually received) with the secret that ``credentials_lookup`` returns for the access key
id, and a refusal carries AWS's reason, error type and message. Also the two credential
lookups the stand-in is given (a fixed mapping, a JSON file read on every lookup).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from multidict import CIMultiDictProxy

MAX_SKEW_SECONDS = 300.0
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

MSG_MISSING = "Missing Authentication Token"
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
MSG_UNKNOWN_KEY = "The security token included in the request is invalid."


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one request's signature."""

    ok: bool
    reason: str  # accepted | missing_auth | malformed | unknown_key | wrong_region | ...
    status: int = 200
    error_type: str = ""
    message: str = ""
    access_key_id: str | None = None


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
