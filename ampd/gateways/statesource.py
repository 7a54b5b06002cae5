"""Where a state document lives, and fetching it: a local file, SSM Parameter Store, S3 or
AWS AppConfig.

``--state`` / ``AMPD_STATE`` take a path, ``ssm:NAME`` (String or SecureString, decrypted),
``s3://BUCKET/KEY`` or ``appconfig:APPLICATION/ENVIRONMENT/PROFILE``. :class:`SourceFetcher`
reads remote documents with botocore's normal credential chain (``AWS_ENDPOINT_URL``
honoured) and fetches only what changed:

- SSM: one ``GetParameters`` call per poll for the state and every parameter it names
  (up to 10 names a call); an unchanged ``Version`` means nothing to do.
- S3: ``GetObject`` with ``If-None-Match: <ETag>``; 304 means unchanged.
- AppConfig: the Data API, one configuration session per profile, polled no sooner than
  the server asks (:mod:`ampd.gateways.appconfigdata`).

Every failure is a :class:`SourceError` whose message is one line naming the source and
the reason (missing, denied, too large, unreachable, throttled, not UTF-8).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ampd.errors import AmpdError
from ampd.gateways import imds
from ampd.gateways.appconfigdata import AppConfigSessions
from ampd.gateways.botoerrors import network_errors
from ampd.gateways.sourceref import SourceRef, outside_prefix, parse_ref

if TYPE_CHECKING:
    import botocore.exceptions

__all__ = [
    "MAX_BYTES",
    "Fetched",
    "NoRegion",
    "SourceError",
    "SourceFetcher",
    "SourceRef",
    "outside_prefix",
    "parse_ref",
    "source_region",
]

MAX_BYTES = 256 * 1024  # a state document or a file it names; SSM itself allows 8 KiB
SSM_BATCH = 10  # GetParameters takes at most 10 names
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 10.0
IMDS_ATTEMPTS = 4  # 1 s each, 0.5 s, 1 s, 2 s apart: a slow IMDS at boot is waited for
IMDS_BACKOFF = 0.5

_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "403", "Forbidden"})
_MISSING = frozenset(
    {
        "ParameterNotFound",
        "NoSuchKey",
        "NoSuchBucket",
        "404",
        "NotFound",
        "ResourceNotFoundException",
    }
)
_NOT_FOUND = {
    "s3": "does not exist",
    "ssm": "parameter not found",
    "appconfig": "no such application, environment or configuration profile",
}
_THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "TooManyUpdates", "SlowDown", "RequestLimitExceeded"}
)


class SourceError(AmpdError):
    """A document could not be fetched. ``reason`` is short; ``str()`` names the source."""

    def __init__(
        self,
        ref: SourceRef,
        reason: str,
        *,
        unreachable: bool = False,
        condition_reason: str = "",
    ) -> None:
        self.ref = ref
        self.reason = reason
        self.unreachable = unreachable  # network, throttling, credentials: may clear up
        # the StateSourceReachable reason ("NoRegion"); empty: Unreachable / FetchFailed
        self.condition_reason = condition_reason
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
        return SourceError(ref, _NOT_FOUND.get(ref.kind, "does not exist"))
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


class NoRegion(AmpdError):
    """No region for the state source's client (no --region, no AWS_REGION, no IMDS)."""


def _failure(ref: SourceRef, e: BaseException) -> SourceError:
    """Why a read of ``ref`` failed, as one SourceError: the same for SSM, S3 and
    AppConfig. An exception none of them raises is not theirs to explain: raised again."""
    if isinstance(e, NoRegion):
        return SourceError(ref, str(e), unreachable=True, condition_reason="NoRegion")
    bx = _exceptions()
    if isinstance(e, bx.ClientError):
        return _client_error(ref, e)
    if isinstance(e, network_errors()):
        return SourceError(ref, f"unreachable: {e}", unreachable=True)
    if isinstance(e, bx.NoCredentialsError):
        why = "no AWS credentials (env, shared config or instance role)"
        return SourceError(ref, why, unreachable=True)
    if isinstance(e, bx.BotoCoreError):
        return SourceError(ref, str(e))
    raise e


def source_region(
    explicit: str | None,
    configured: str | None,
    *,
    imds_region: Callable[[], str | None] = imds.region,
    sleep: Callable[[float], None] = time.sleep,
    attempts: int = IMDS_ATTEMPTS,
) -> str:
    """The region the SSM/S3 client is made for: ``--region``, ``AWS_REGION``,
    ``AWS_DEFAULT_REGION`` (or the shared config's, ``configured``), else IMDS, asked up to
    ``attempts`` times with backoff. NoRegion otherwise: never a guessed default, which
    would read another region's parameter of the same name."""
    for region in (
        explicit,
        os.environ.get("AWS_REGION"),
        os.environ.get("AWS_DEFAULT_REGION"),
        configured,
    ):
        if region:
            return region
    imds_off = os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
    for i in range(0 if imds_off else attempts):
        region = imds_region()
        if region:
            return region
        if i + 1 < attempts:
            sleep(IMDS_BACKOFF * 2**i)
    why = "instance metadata is disabled" if imds_off else f"IMDS did not answer ({attempts} tries)"
    raise NoRegion(
        f"no region for the state source: pass --region, set AWS_REGION, or run on EC2 ({why})"
    )


class SourceFetcher:
    """Reads documents from SSM and S3. Clients are made on first use, once per service,
    for the region :func:`source_region` finds (not made, and asked again at the next
    fetch, while there is none)."""

    def __init__(
        self,
        region: str | None = None,
        *,
        session: Any = None,
        imds_region: Callable[[], str | None] = imds.region,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._region = region
        self._session = session
        self._imds_region = imds_region
        self._sleep = sleep
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._calls = 0
        self.region: str | None = None  # the region the clients were made for
        self.appconfig = AppConfigSessions(
            lambda: self._client("appconfigdata"), max_bytes=MAX_BYTES, clock=clock
        )

    @property
    def calls(self) -> int:
        """API requests made, for tests and benchmarks."""
        return self._calls + self.appconfig.calls

    def pace(self, seconds: float) -> None:
        """The poll interval the state asks for (AppConfig sessions ask the server for it)."""
        self.appconfig.pace(seconds)

    def wait_before(self, refs: Sequence[SourceRef]) -> float:
        """Seconds until the server lets the next look read ``refs`` (AppConfig's pacing)."""
        return max(
            (self.appconfig.wait_before(r) for r in refs if r.kind == "appconfig"), default=0.0
        )

    def _client(self, service: Literal["ssm", "s3", "appconfigdata"]) -> Any:
        with self._lock:
            if service not in self._clients:
                import boto3  # noqa: PLC0415 (lazy: a file-only daemon never loads it)
                from botocore.config import Config  # noqa: PLC0415

                session = self._session or boto3.session.Session()
                region = self.region or source_region(
                    self._region,
                    session.region_name,
                    imds_region=self._imds_region,
                    sleep=self._sleep,
                )
                config = Config(
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    user_agent_extra="ampd",
                )
                self._clients[service] = session.client(service, region_name=region, config=config)
                self.region = region
            return self._clients[service]

    def _client_or_error(
        self, service: Literal["ssm", "s3", "appconfigdata"], refs: Sequence[SourceRef]
    ) -> Any | dict[SourceRef, Fetched | SourceError]:
        try:
            return self._client(service)
        except NoRegion as e:
            return {r: _failure(r, e) for r in refs}

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
            elif ref.kind == "appconfig":
                out[ref] = self._appconfig(ref, known.get(ref))
            elif ref.kind == "file":
                out[ref] = _file(ref)
        return out

    def _ssm(
        self, refs: Sequence[SourceRef], known: Mapping[SourceRef, str]
    ) -> dict[SourceRef, Fetched | SourceError]:
        client = self._client_or_error("ssm", refs)
        if isinstance(client, dict):
            return client
        self._calls += 1
        bx = _exceptions()
        try:
            resp = client.get_parameters(Names=[r.name for r in refs], WithDecryption=True)
        except (bx.ClientError, bx.BotoCoreError) as e:
            return {r: _failure(r, e) for r in refs}
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
        client = self._client_or_error("s3", [ref])
        if isinstance(client, dict):
            return client[ref]
        self._calls += 1
        bx = _exceptions()
        args: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.name}
        if etag:
            args["IfNoneMatch"] = etag
        try:
            resp = client.get_object(**args)
        except bx.ClientError as e:
            code, _ = _code(e)
            if etag and code in {"304", "NotModified"}:
                return Fetched(ref, etag, None)
            return _failure(ref, e)
        except bx.BotoCoreError as e:
            return _failure(ref, e)
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

    def _appconfig(self, ref: SourceRef, known: str | None) -> Fetched | SourceError:
        answer = self.appconfig.look(ref, known)
        e = answer.error
        if e is None:
            if answer.no_content or answer.version is None:
                why = "no configuration deployed to this environment yet"
                return SourceError(ref, why)
            if answer.data is not None and len(answer.data) > MAX_BYTES:
                return SourceError(ref, f"too large: more than {MAX_BYTES} bytes")
            return Fetched(ref, answer.version, answer.data)
        return _failure(ref, e)


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
