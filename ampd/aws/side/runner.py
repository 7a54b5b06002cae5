"""Running one AWS change: the retry book first, then the effect, then the book again.

:class:`ChangeRunner` asks the book whether a change that failed for good on these same
inputs may be tried again, runs the effect, turns what it raised into an
:class:`~ampd.core.Outcome` and records it in the book, and patches the observed cache
after a write. What the pass remembers (ampd.json) is the caller's: the runner returns a
:class:`Ran` saying what happened, and changes nothing of the pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from ampd.aws.gateway.client import AlreadyExists, AwsUnreachable, ConcurrentEdit, ResourceGone
from ampd.aws.model import AMP_CHILDREN, CONCURRENT_EDIT, Desired, Live, fingerprint
from ampd.aws.observe import ObservedCache
from ampd.core import Action, Change, Kind, Outcome
from ampd.engine.retry import RetryBook
from ampd.errors import PermanentError, TemporaryError
from ampd.spec.models import StateSpec

__all__ = ["ChangeRunner", "Ran", "spec_fingerprint"]

log = structlog.get_logger()


@dataclass(frozen=True)
class Ran:
    """One change's outcome; ``fingerprint`` of its inputs when it was applied; ``gone``
    when the write found the resource deleted outside ampd."""

    outcome: Outcome
    fingerprint: str | None = None
    gone: bool = False


class ChangeRunner:
    def __init__(self, book: RetryBook, cache: ObservedCache) -> None:
        self._book = book
        self._cache = cache

    def run(self, change: Change, desired: Desired | None, effect: Callable[[], None]) -> Ran:
        """Raises AwsUnreachable only (the pass ends)."""
        key = change.key
        fp = fingerprint(desired) if desired is not None else f"delete:{change.action}"
        remembered = self._book.blocked(key, fp)
        if remembered is not None:
            message = f"not retried until the state file changes: {remembered}"
            return Ran(Outcome(change, ok=False, permanent=True, message=message))
        try:
            effect()
        except AwsUnreachable:
            raise
        except (ResourceGone, AlreadyExists, ConcurrentEdit) as e:
            return self._reread(change, e)
        except PermanentError as e:
            self._book.failed_permanently(key, fp, str(e))
            log.error("aws.change.failed", key=str(key), action=change.action.value, error=str(e))
            return Ran(Outcome(change, ok=False, message=str(e), permanent=True))
        except TemporaryError as e:
            delay = self._book.failed_temporarily(key, e.delay)
            log.warning(
                "aws.change.failed",
                key=str(key),
                action=change.action.value,
                error=str(e),
                retry_after=round(delay, 2),
            )
            return Ran(Outcome(change, ok=False, message=str(e), retry_after=delay))
        self._book.succeeded(key)
        log.info("aws.change.applied", key=str(key), action=change.action.value)
        self._patch_cache(change)
        applied = fp if desired is not None and change.action is not Action.DELETE else None
        return Ran(Outcome(change, ok=True, message=change.reason), applied)

    def _reread(self, change: Change, e: ResourceGone | AlreadyExists | ConcurrentEdit) -> Ran:
        """What ampd remembered of the resource is stale: forget it and pass again at
        once, so the next pass plans from what AWS holds (a create for a resource deleted
        outside ampd; an update, an in-sync or a refusal for one that is there). Not a
        failure on these inputs: nothing is remembered against them. The book backs off
        only a repeat, so two writers fighting over it cannot spin."""
        key = change.key
        self._cache.forget(key)
        delay = self._book.failed_temporarily(key, e.delay)
        gone = isinstance(e, ResourceGone)
        if gone:
            message = f"deleted outside ampd; read again and recreated on the next pass ({e})"
        elif isinstance(e, ConcurrentEdit):
            message = (
                f"{CONCURRENT_EDIT} since ampd read it: not overwritten; read again on the "
                f"next pass ({e})"
            )
        else:
            message = f"already exists; read again on the next pass ({e})"
        log.warning(
            "aws.change.stale",
            key=str(key),
            action=change.action.value,
            error=str(e),
            retry_after=round(delay, 2),
        )
        return Ran(Outcome(change, ok=False, message=message, retry_after=delay), gone=gone)

    def _patch_cache(self, change: Change) -> None:
        key, cache = change.key, self._cache
        if change.action is Action.DELETE:
            cache.resources[key] = None
        elif key.kind in AMP_CHILDREN:
            # AMP validates these after answering: the pass reads them back (confirm)
            cache.resources.pop(key, None)
            if key.kind is Kind.RULE_GROUP and cache.rule_group_tags is not None:
                cache.rule_group_tags[key.name] = dict((change.after or {}).get("tags") or {})
        elif key.kind is not Kind.WORKSPACE:
            fields = dict(change.after or {})
            cache.resources[key] = Live(key, fields, dict(fields.get("tags") or {}))
            if key.kind is Kind.IAM_POLICY and key.name.partition("/")[2].startswith("arn:"):
                role, _, arn = key.name.partition("/")
                cache.roles_attached.setdefault(role, []).append(arn)


def spec_fingerprint(spec: StateSpec, files: Mapping[str, bytes | None]) -> str:
    """What the AWS side's cached reads depend on: the spec's AWS parts and named files."""
    h = hashlib.sha256()
    h.update(spec.stack.encode())
    for part in (spec.aws, spec.workspace, spec.iam):
        h.update(b"\x1f" + (part.model_dump_json().encode() if part is not None else b"-"))
    for path, data in sorted(files.items()):
        h.update(b"\x1f" + path.encode() + b"\x1e" + (data if data is not None else b"-"))
    return h.hexdigest()
