"""Where a state document lives, and fetching it: a local file, SSM Parameter Store or S3.

``--state`` / ``AMPD_STATE`` take a path, ``ssm:NAME`` (String or SecureString, decrypted)
or ``s3://BUCKET/KEY``. :class:`SourceFetcher` reads remote documents with botocore's
normal credential chain (``AWS_ENDPOINT_URL`` honoured) and fetches only what changed:

- SSM: one ``GetParameters`` call per poll for the state and every parameter it names
  (up to 10 names a call); an unchanged ``Version`` means nothing to do.
- S3: ``GetObject`` with ``If-None-Match: <ETag>``; 304 means unchanged.

Every failure is a :class:`SourceError` whose message is one line naming the source and
the reason (missing, denied, too large, unreachable, throttled, not UTF-8).
"""

from __future__ import annotations

import posixpath
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ampd.errors import AmpdError
from ampd.gateways import imds
from ampd.gateways.aws_base import network_errors

if TYPE_CHECKING:
    import botocore.exceptions

__all__ = [
    "MAX_BYTES",
    "Fetched",
    "SourceError",
    "SourceFetcher",
    "SourceRef",
    "parse_ref",
    "scratch_dir",
]

MAX_BYTES = 256 * 1024  # a state document or a file it names; SSM itself allows 8 KiB
SSM_BATCH = 10  # GetParameters takes at most 10 names
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 10.0

_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "403", "Forbidden"})
_MISSING = frozenset({"ParameterNotFound", "NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "TooManyUpdates", "SlowDown", "RequestLimitExceeded"}
)

Kind = Literal["file", "ssm", "s3"]


@dataclass(frozen=True, order=True)
class SourceRef:
    """A state document's location. ``str()`` gives it back as the user writes it."""

    kind: Kind
    name: str  # file path, SSM parameter name, or S3 key
    bucket: str = ""

    def __str__(self) -> str:
        if self.kind == "ssm":
            return f"ssm:{self.name}"
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.name}"
        return self.name

    @property
    def remote(self) -> bool:
        return self.kind != "file"

    def beside(self, relative: str) -> SourceRef:
        """A document named relative to this one: same SSM prefix, same S3 key directory."""
        if relative.startswith(("ssm:", "s3://")):
            return parse_ref(relative)
        if self.kind == "ssm" and "/" not in self.name:
            # a flat parameter name: siblings are flat too, or fully qualified
            name = relative if "/" not in relative else "/" + relative.lstrip("/")
            return SourceRef("ssm", posixpath.normpath(name))
        base = posixpath.dirname(self.name)
        joined = posixpath.normpath(posixpath.join(base, relative))
        if self.kind == "s3":
            joined = joined.lstrip("/")
        return SourceRef(self.kind, joined, self.bucket)


def parse_ref(text: str) -> SourceRef:
    """``ssm:NAME``, ``s3://BUCKET/KEY`` or a path. Raises ValueError for a malformed one."""
    if text.startswith("ssm:"):
        name = text[4:]
        if not name or name.endswith("/"):
            raise ValueError(f"{text}: ssm: needs a parameter name, e.g. ssm:/fleet/prod/ampd")
        return SourceRef("ssm", name)
    if text.startswith("s3://"):
        bucket, sep, key = text[5:].partition("/")
        if not bucket or not sep or not key or key.endswith("/"):
            raise ValueError(f"{text}: s3:// needs a bucket and a key, e.g. s3://bucket/ampd.yml")
        return SourceRef("s3", key, bucket)
    return SourceRef("file", text)


class SourceError(AmpdError):
    """A document could not be fetched. ``reason`` is short; ``str()`` names the source."""

    def __init__(self, ref: SourceRef, reason: str, *, unreachable: bool = False) -> None:
        self.ref = ref
        self.reason = reason
        self.unreachable = unreachable  # network, throttling, credentials: may clear up
        super().__init__(f"{ref}: {reason}")


@dataclass(frozen=True)
class Fetched:
    """A document's version (SSM Version, S3 ETag) and its bytes; ``data`` is None when the
    version is the one the caller already has."""

    ref: SourceRef
    version: str
    data: bytes | None


def _code(e: botocore.exceptions.ClientError) -> tuple[str, str]:
    err = e.response.get("Error", {})
    code = str(err.get("Code") or e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return code, str(err.get("Message") or "").strip()


def _client_error(ref: SourceRef, e: botocore.exceptions.ClientError) -> SourceError:
    code, message = _code(e)
    if code in _DENIED:
        what = f": {message}" if message else ""
        return SourceError(ref, f"access denied{what}")
    if code in _MISSING:
        return SourceError(ref, "does not exist" if ref.kind == "s3" else "parameter not found")
    if code in _THROTTLED:
        return SourceError(ref, f"throttled ({code}); will try again", unreachable=True)
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if status >= 500:
        return SourceError(
            ref, f"service error {status} ({code}); will try again", unreachable=True
        )
    return SourceError(ref, f"{code}: {message}" if message else code)


def _exceptions() -> Any:
    """botocore.exceptions, loaded on the first remote read (not at import)."""
    import botocore.exceptions as bx  # noqa: PLC0415

    return bx


def _checked(ref: SourceRef, data: bytes) -> bytes:
    if len(data) > MAX_BYTES:
        raise SourceError(ref, f"too large: {len(data)} bytes (at most {MAX_BYTES})")
    return data


class SourceFetcher:
    """Reads documents from SSM and S3. Clients are made on first use, once per service."""

    def __init__(self, region: str | None = None, *, session: Any = None) -> None:
        self._region = region
        self._session = session
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.calls = 0  # API requests made, for tests and benchmarks

    def _client(self, service: Literal["ssm", "s3"]) -> Any:
        with self._lock:
            if service not in self._clients:
                import boto3  # noqa: PLC0415 (lazy: a file-only daemon never loads it)
                from botocore.config import Config  # noqa: PLC0415

                session = self._session or boto3.session.Session()
                region = self._region or session.region_name or imds.region() or "us-east-1"
                config = Config(
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    user_agent_extra="ampd",
                )
                self._clients[service] = session.client(service, region_name=region, config=config)
            return self._clients[service]

    def fetch(
        self, refs: Sequence[SourceRef], known: Mapping[SourceRef, str]
    ) -> dict[SourceRef, Fetched | SourceError]:
        """Each ref's version and (when not ``known[ref]``) its bytes, or why not."""
        out: dict[SourceRef, Fetched | SourceError] = {}
        ssm = [r for r in refs if r.kind == "ssm"]
        for i in range(0, len(ssm), SSM_BATCH):
            out.update(self._ssm(ssm[i : i + SSM_BATCH], known))
        for ref in refs:
            if ref.kind == "s3":
                out[ref] = self._s3(ref, known.get(ref))
            elif ref.kind == "file":
                out[ref] = _file(ref)
        return out

    def _ssm(
        self, refs: Sequence[SourceRef], known: Mapping[SourceRef, str]
    ) -> dict[SourceRef, Fetched | SourceError]:
        self.calls += 1
        bx = _exceptions()
        try:
            resp = self._client("ssm").get_parameters(
                Names=[r.name for r in refs], WithDecryption=True
            )
        except bx.ClientError as e:
            return {r: _client_error(r, e) for r in refs}
        except network_errors() as e:
            return {r: SourceError(r, f"unreachable: {e}", unreachable=True) for r in refs}
        except bx.NoCredentialsError:
            why = "no AWS credentials (env, shared config or instance role)"
            return {r: SourceError(r, why, unreachable=True) for r in refs}
        except bx.BotoCoreError as e:
            return {r: SourceError(r, str(e)) for r in refs}
        by_name = {p["Name"]: p for p in resp.get("Parameters", [])}
        out: dict[SourceRef, Fetched | SourceError] = {}
        for ref in refs:
            p = by_name.get(ref.name)
            if p is None:
                out[ref] = SourceError(ref, "parameter not found")
                continue
            version = str(p.get("Version", ""))
            if known.get(ref) == version:
                out[ref] = Fetched(ref, version, None)
                continue
            try:
                out[ref] = Fetched(ref, version, _checked(ref, str(p.get("Value", "")).encode()))
            except SourceError as e:
                out[ref] = e
        return out

    def _s3(self, ref: SourceRef, etag: str | None) -> Fetched | SourceError:
        self.calls += 1
        bx = _exceptions()
        args: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.name}
        if etag:
            args["IfNoneMatch"] = etag
        try:
            resp = self._client("s3").get_object(**args)
        except bx.ClientError as e:
            code, _ = _code(e)
            if etag and code in {"304", "NotModified"}:
                return Fetched(ref, etag, None)
            return _client_error(ref, e)
        except network_errors() as e:
            return SourceError(ref, f"unreachable: {e}", unreachable=True)
        except bx.NoCredentialsError:
            why = "no AWS credentials (env, shared config or instance role)"
            return SourceError(ref, why, unreachable=True)
        except bx.BotoCoreError as e:
            return SourceError(ref, str(e))
        body = resp["Body"]
        try:
            size = int(resp.get("ContentLength") or 0)
            if size > MAX_BYTES:
                return SourceError(ref, f"too large: {size} bytes (at most {MAX_BYTES})")
            data = _checked(ref, body.read(MAX_BYTES + 1))
        except SourceError as e:
            return e
        except network_errors() as e:
            return SourceError(ref, f"unreachable: {e}", unreachable=True)
        finally:
            body.close()
        return Fetched(ref, str(resp.get("ETag", "")), data)


def scratch_dir() -> Path:
    """A private temporary directory (for checking fetched files without a state dir)."""
    return Path(tempfile.mkdtemp(prefix="ampd-source-"))


def _file(ref: SourceRef) -> Fetched | SourceError:
    path = Path(ref.name)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return SourceError(ref, f"too large: {size} bytes (at most {MAX_BYTES})")
        data = path.read_bytes()
    except FileNotFoundError:
        return SourceError(ref, "no such file")
    except PermissionError:
        return SourceError(ref, "permission denied")
    except OSError as e:
        return SourceError(ref, e.strerror or str(e))
    return Fetched(ref, "", data)
