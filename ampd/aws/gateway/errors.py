"""The AWS gateway's errors: what an AWS answer means to the pass, as ampd's error tree
(``ampd.errors``) holds it. ``ampd.aws.gateway.base`` decides which one an answer is.

    TemporaryError
      AwsUnreachable        the endpoint was not reached: the pass ends
        CredentialsRejected AWS did not take the credentials: the gateway is rebuilt
      AskedToWait           throttled or unavailable, with ``Retry-After``
      ResourceGone          a write found its resource deleted since it was read
      AlreadyExists         a create found it made meanwhile
      ConcurrentEdit        a write with the revision read found a newer one
    PermanentError
      NotFound              a describe/get/delete found nothing (None, or done)
      AccessDenied          names the action and the principal

The last three TemporaryErrors have ``delay`` 0: the next pass reads again and plans
from what is there; nothing is waited for.
"""

from __future__ import annotations

from ampd.engine.retry import BACKOFF_CAP, AtLeast
from ampd.errors import PermanentError, TemporaryError

__all__ = [
    "EXPIRED_CODES",
    "AccessDenied",
    "AlreadyExists",
    "AskedToWait",
    "AwsUnreachable",
    "ConcurrentEdit",
    "CredentialsRejected",
    "NotFound",
    "ResourceGone",
    "credentials_rejected",
]

CREDENTIALS_DELAY = 10.0
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})


class AwsUnreachable(TemporaryError):
    """The endpoint could not be reached at all (refused, reset, timed out, DNS)."""


class CredentialsRejected(AwsUnreachable):
    """AWS answered but did not accept the request's credentials: ``reason`` is
    ``ClockSkew`` (the signature's time is more than 5 minutes off AWS's clock),
    ``CredentialsExpired`` (the session token was rotated out) or ``CredentialsInvalid``."""

    def __init__(self, reason: str, message: str, delay: float) -> None:
        self.reason = reason
        super().__init__(message, delay=delay)


def credentials_rejected(code: str, message: str, where: str) -> CredentialsRejected:
    skewed = ("Signature expired", "Signature not yet current")
    if any(w in message for w in skewed):
        hint = "the host's clock is more than 5 minutes off AWS's (check chrony/NTP)"
        return CredentialsRejected("ClockSkew", f"{where} ({hint})", CREDENTIALS_DELAY)
    if code in EXPIRED_CODES:
        hint = "AWS credentials expired; fresh ones are read from the credential chain"
        return CredentialsRejected("CredentialsExpired", f"{where} ({hint})", CREDENTIALS_DELAY)
    return CredentialsRejected("CredentialsInvalid", where, CREDENTIALS_DELAY)


class AskedToWait(TemporaryError):
    """AWS was throttling or unavailable and said how long to wait (``Retry-After``).

    ``delay`` is an :class:`~ampd.engine.retry.AtLeast`: the retry book never waits less
    than ``retry_after`` seconds (bounded by its cap) before the next try."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = min(max(retry_after, 0.0), BACKOFF_CAP)
        super().__init__(message, delay=AtLeast(self.retry_after))


class NotFound(PermanentError):
    """A describe/get/delete found nothing: ``_get`` makes it None, ``_delete`` done."""


class ResourceGone(TemporaryError):
    """A write (``Put…``/``Update…``) found its resource gone: deleted outside ampd since
    it was last read. What was remembered of it is stale; the next pass reads it again
    and plans from what is there (a create). ``delay`` is 0: nothing to wait for."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=0.0)


class AlreadyExists(TemporaryError):
    """A create found the resource already there (made by a concurrent writer, or by
    this host's own earlier call whose answer was lost). Not a failure to give up on:
    the next pass reads it again and plans from what is there."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=0.0)


class ConcurrentEdit(TemporaryError):
    """A write made with the revision ampd read was refused: the resource was changed
    since (by a person, or another writer). Nothing was overwritten; the next pass reads
    it again and plans from what is there. ``delay`` is 0: nothing to wait for."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=0.0)


class AccessDenied(PermanentError):
    """AWS refused an action to the principal; names both."""

    def __init__(self, action: str, principal: str, detail: str) -> None:
        self.action = action
        self.principal = principal
        super().__init__(f"AccessDenied: {principal} is not allowed to call {action} ({detail})")
