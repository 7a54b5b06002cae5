"""The AWS gateway's one call path: what each AWS answer means, and the call that counts it.

The clients and the call counts are in ``ampd.aws.gateway.clients``, the error classes in
``ampd.aws.gateway.errors`` (both re-exported here).

The typed API: reads in ``ampd.aws.gateway.client`` (AMP) and ``ampd.aws.gateway.iam`` (IAM),
writes in ``ampd.aws.gateway.writer`` and ``ampd.aws.gateway.iam_writes``.

Every call goes through :meth:`AwsBase._call`, which

- counts it per ``(operation, code)`` (``api_call_counts()``, exported by the daemon as
  ``ampd_aws_api_calls_total``),
- turns botocore's exceptions into ampd's error tree:

      throttling, HTTP 429, 5xx                      -> TemporaryError(delay); with a
                                                        ``Retry-After`` header, AskedToWait
                                                        (the retry book waits at least that)
      ConflictException (workspace busy),
      IAM ConcurrentModification                     -> TemporaryError(delay)
      connection refused/reset/timed out             -> AwsUnreachable (a TemporaryError)
      expired/unknown credentials, clock skew        -> CredentialsRejected (an
                                                        AwsUnreachable whose ``reason`` says
                                                        which: the pass ends, the gateway is
                                                        rebuilt so the credential chain is
                                                        read again)
      AccessDenied                                   -> AccessDenied (a PermanentError that
                                                        names the action and the principal)
      not found on Delete*/Detach*/Remove*           -> done: the call returns normally
      not found on Put*/Update*/Tag*/Untag*/Attach*/
        AddRoleTo*/Create* of a child                -> ResourceGone (read again, re-plan);
                                                        an IAM policy ARN that does not
                                                        exist stays a PermanentError
      not found on Describe*/Get*                    -> ``None`` from describe/get methods
      EntityAlreadyExists, ConflictException on a
        Create* of an AMP child that is there        -> AlreadyExists (read again, re-plan);
                                                        also any refusal of a query logging
                                                        create that a re-read finds there
                                                        (``AwsWriter.create_query_logging``)
      ConflictException on a write of the resource
        policy that is not about a busy state        -> ConcurrentEdit (its revision, or
                                                        NO_POLICY, moved on: nothing
                                                        overwritten; read again)
      validation, quota, anything else               -> PermanentError

Only codes that the amp, iam and sts models (or AWS's common errors) name are matched.

botocore's own retries are off (one attempt): scheduling and backoff are decided by the
reconciler, in one place. Timeouts are short so a pass never hangs on AWS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from ampd.aws.gateway.clients import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    Clients,
    Identity,
    api_call_counts,
    count,
    make_clients,
    policy_json,
    reset_api_call_counts,
    tag_dict,
    tag_list,
)
from ampd.aws.gateway.errors import (
    CREDENTIALS_DELAY,
    EXPIRED_CODES,
    AccessDenied,
    AlreadyExists,
    AskedToWait,
    AwsUnreachable,
    ConcurrentEdit,
    CredentialsRejected,
    NotFound,
    ResourceGone,
    credentials_rejected,
)
from ampd.errors import PermanentError, TemporaryError
from ampd.gateways.botoerrors import network_errors

if TYPE_CHECKING:
    import boto3

__all__ = [
    "CONNECT_TIMEOUT",
    "CREDENTIALS_DELAY",
    "READ_TIMEOUT",
    "AccessDenied",
    "AlreadyExists",
    "AskedToWait",
    "AwsBase",
    "AwsUnreachable",
    "Clients",
    "ConcurrentEdit",
    "CredentialsRejected",
    "Identity",
    "NotFound",
    "ResourceGone",
    "api_call_counts",
    "make_clients",
    "policy_json",
    "reset_api_call_counts",
    "tag_dict",
    "tag_list",
]

log = structlog.get_logger()

T = TypeVar("T")

THROTTLE_DELAY = 2.0
SERVER_ERROR_DELAY = 1.0
NETWORK_DELAY = 5.0
CONFLICT_DELAY = 5.0

# IAM and STS (query protocol) answer "Throttling", AMP (rest-json) "ThrottlingException".
_THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException"})
_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchEntity"})
_EXPIRED_CODES = EXPIRED_CODES
_CREDENTIAL_CODES = _EXPIRED_CODES | {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
}
_SERVER_CODES = frozenset({"InternalServerException", "ServiceUnavailable", "ServiceFailure"})
_CONCURRENT_CODES = frozenset({"ConcurrentModification"})
_EXISTS_CODES = frozenset({"EntityAlreadyExists"})
_CONFLICT_CODES = frozenset({"ConflictException"})
# a not-found on these means what the cache holds is stale
_GONE_ON_WRITE = ("Put", "Update", "Tag", "Untag", "Attach", "AddRoleTo", "Create")
# AMP's creates of a workspace's child: a ConflictException that is not about the
# workspace's state means the child is already there (one per workspace, made meanwhile)
_AMP_CHILD_CREATES = frozenset(
    {
        "CreateRuleGroupsNamespace",
        "CreateAlertManagerDefinition",
        "CreateLoggingConfiguration",
        "CreateQueryLoggingConfiguration",
    }
)
# writes made with the revision ampd read: a conflict not about a busy state means the
# revision moved on (someone else edited it)
_REVISIONED = frozenset({"PutResourcePolicy", "DeleteResourcePolicy"})
_BUSY_RE = re.compile(r"\b(CREATING|UPDATING|DELETING|not (in )?(an? )?ACTIVE)\b", re.IGNORECASE)
_IAM_PREFIX = {"amp": "aps", "iam": "iam", "sts": "sts"}
_DENIED_RE = re.compile(
    r"(?:User|Principal):?\s+(?P<principal>\S+)\s+is not authorized to perform:?\s+"
    r"(?P<action>[\w-]+:[\w*]+)"
)


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """The seconds of a ``Retry-After`` header (AMP binds its errors' ``retryAfterSeconds``
    to it; botocore gives header names in lower case, a hand-made answer may not); None
    when absent or not a number."""
    value = headers.get("retry-after", headers.get("Retry-After"))
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _not_found(operation: str, code: str, where: str) -> Exception:
    """A not-found answer, by what the call was doing: a write's resource is gone; anything
    else (Describe/Get/List, and Delete/Detach/Remove) is NotFound, which ``_get`` makes
    None and ``_delete`` makes done."""
    if operation.startswith(_GONE_ON_WRITE):
        if code == "NoSuchEntity" and ":policy/" in where:
            return PermanentError(where)  # a managed policy or boundary ARN that is not there
        return ResourceGone(where)
    return NotFound(where)


class AwsBase:
    """Clients of one region and the one call path every API method goes through."""

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        *,
        session: boto3.session.Session | None = None,
        clients: Clients | None = None,
    ) -> None:
        self.region = region
        self.clients = clients or make_clients(region, endpoint_url, session)
        self._amp = self.clients.amp
        self._iam = self.clients.iam
        self._sts = self.clients.sts

    # -- the one call path --------------------------------------------------------------

    def _call(self, service: str, operation: str, fn: Callable[[], T]) -> T:
        import botocore.exceptions  # noqa: PLC0415 (loaded with the clients; cached)

        try:
            result = fn()
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            code = str(err.get("Code") or "Unknown")
            message = str(err.get("Message") or err.get("message") or e)
            meta = e.response.get("ResponseMetadata", {})
            status = int(meta.get("HTTPStatusCode") or 0)
            wait = retry_after(meta.get("HTTPHeaders") or {})
            count(operation, code)
            raise self._translate(
                service, operation, code, message, status, retry_after=wait
            ) from e
        except network_errors() as e:
            count(operation, "NetworkError")
            raise AwsUnreachable(f"{operation}: {e}", delay=NETWORK_DELAY) from e
        except botocore.exceptions.NoCredentialsError as e:
            count(operation, "NoCredentials")
            raise TemporaryError(
                f"{operation}: no AWS credentials (env, shared config or instance role)",
                delay=30.0,
            ) from e
        except botocore.exceptions.BotoCoreError as e:
            count(operation, type(e).__name__)
            raise PermanentError(f"{operation}: {e}") from e
        count(operation, "OK")
        return result

    def _translate(
        self,
        service: str,
        operation: str,
        code: str,
        message: str,
        status: int,
        *,
        retry_after: float | None = None,
    ) -> Exception:
        where = f"{operation}: {code}: {message}"
        if code in _CREDENTIAL_CODES:
            return credentials_rejected(code, message, where)
        if code in _THROTTLING_CODES or status == 429 or status >= 500 or code in _SERVER_CODES:
            if retry_after is not None:
                return AskedToWait(where, retry_after)
            throttled = code in _THROTTLING_CODES or status == 429
            return TemporaryError(where, delay=THROTTLE_DELAY if throttled else SERVER_ERROR_DELAY)
        if code in _DENIED_CODES or status == 403:
            m = _DENIED_RE.search(message)
            action = m.group("action") if m else f"{_IAM_PREFIX.get(service, service)}:{operation}"
            principal = m.group("principal") if m else (self.clients.principal or "the caller")
            return AccessDenied(action, principal, message)
        if code in _NOT_FOUND_CODES:
            return _not_found(operation, code, where)
        if code in _EXISTS_CODES:
            return AlreadyExists(where)
        if code in _CONFLICT_CODES:
            if operation in _AMP_CHILD_CREATES and not _BUSY_RE.search(message):
                return AlreadyExists(where)
            if operation in _REVISIONED and not _BUSY_RE.search(message):
                return ConcurrentEdit(where)
            return TemporaryError(where, delay=CONFLICT_DELAY)
        if code in _CONCURRENT_CODES:
            return TemporaryError(where, delay=CONFLICT_DELAY)
        return PermanentError(where)

    def _get(self, service: str, operation: str, fn: Callable[[], T]) -> T | None:
        """A describe/get call whose 'not found' means None."""
        try:
            return self._call(service, operation, fn)
        except NotFound:
            return None

    def _pages(self, service: str, operation: str, pages: Iterable[Any]) -> list[dict[str, Any]]:
        """Every page of a botocore paginator (lazy: nothing is sent before the first
        page is asked for), each one fetched through ``_call``: counted and translated
        per page."""
        it = iter(pages)
        out: list[dict[str, Any]] = []
        while True:
            try:
                page = self._call(service, operation, lambda: next(it))
            except StopIteration:  # the last page said there is no more: nothing was sent
                return out
            out.append(dict(page))

    def _delete(self, service: str, operation: str, fn: Callable[[], object]) -> None:
        """A delete/detach/remove call: 'not found' means it is already done (the call is
        still counted under its code)."""
        try:
            self._call(service, operation, fn)
        except NotFound:
            log.info("aws.already_gone", operation=operation)

    # -- STS --------------------------------------------------------------------------------

    def identity(self) -> Identity:
        r = self._call("sts", "GetCallerIdentity", self._sts.get_caller_identity)
        self.clients.principal = r["Arn"]
        return Identity(account=r["Account"], arn=r["Arn"])
