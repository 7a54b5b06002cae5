"""The AWS side's observe: every read of one pass, and not one write.

The workspace is found (by id, stored id, or alias among this stack's workspaces) or, when
the spec's section was removed, the one ampd.json remembers is described; then its
children and IAM are read through the :class:`~ampd.aws.observe.ObservedCache`. A
failure to reach AWS at all ends the reads and is kept in the value, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from ampd.aws.gateway.client import AwsReader, AwsUnreachable, Identity
from ampd.aws.model import TRANSITIONAL, Desired, Live, Unreadable, parse_key, workspace_key
from ampd.aws.observe import (
    ObservedCache,
    WorkspaceLookup,
    find_workspace,
    read_children,
    workspace_gone,
    workspace_live,
)
from ampd.aws.side.planning import AMP_CHILDREN, wave2_desired
from ampd.aws.side.values import Children, WorkspaceSeen
from ampd.core import ResourceKey
from ampd.engine.retry import RetryBook
from ampd.errors import AmpdError, PermanentError, TemporaryError
from ampd.gateways.store import StoredState
from ampd.spec.models import StateSpec

__all__ = ["REACHABILITY", "observe_children", "observe_workspace", "unreachable_delay"]

log = structlog.get_logger()

REACHABILITY = "aws.reachability"


def unreachable_delay(book: RetryBook, e: AmpdError) -> float | None:
    """The retry book's wait after AWS could not be asked (None: not retried, permanent)."""
    permanent = isinstance(e, PermanentError)
    base = e.delay if isinstance(e, TemporaryError) else 5.0
    delay = None if permanent else book.failed_temporarily(REACHABILITY, base)
    log.warning("aws.unreachable", error=str(e), retry_after=delay)
    return delay


def observe_workspace(
    gw: AwsReader, spec: StateSpec, stored: StoredState, cache: ObservedCache
) -> WorkspaceSeen:
    """Raises AwsUnreachable only; every other failure is an Unreadable in the value."""
    key = workspace_key(spec)
    if spec.workspace is None:
        return _orphan(gw, spec, stored)
    cached = cache.workspace
    if cache.workspace_read and (cached is None or cached.status not in TRANSITIONAL):
        return WorkspaceSeen(WorkspaceLookup(cached))
    try:
        lookup = find_workspace(gw, spec, stored.workspace_id)
    except AwsUnreachable:
        raise
    except (PermanentError, TemporaryError) as e:
        return WorkspaceSeen(WorkspaceLookup(Unreadable.of(key, e)))
    if not isinstance(lookup.live, Unreadable):
        cache.workspace = lookup.live
        cache.workspace_read = lookup.live is None or lookup.live.status not in TRANSITIONAL
    return WorkspaceSeen(lookup)


def _orphan(gw: AwsReader, spec: StateSpec, stored: StoredState) -> WorkspaceSeen:
    """The workspace section was removed: the one ampd made, if it is still there."""
    key = workspace_key(spec)
    if str(key) not in stored.applied or not stored.workspace_id:
        return WorkspaceSeen()
    try:
        w = gw.describe_workspace(stored.workspace_id)
    except AwsUnreachable:
        raise
    except AmpdError:
        return WorkspaceSeen()
    if workspace_gone(w):  # gone, or AWS is deleting it
        return WorkspaceSeen(orphan_gone=True)
    assert w is not None
    return WorkspaceSeen(orphan=workspace_live(key, w))


def observe_children(
    gw: AwsReader,
    spec: StateSpec,
    region: str,
    identity: Identity,
    ws_live: Live | None,
    files: Mapping[str, bytes | None],
    applied: Mapping[str, str],
    cache: ObservedCache,
) -> Children:
    """IAM, the workspace's children when it is ACTIVE, and what ampd applied before (to
    find what is no longer wanted). ``ws_live``: the spec's workspace, None when it does
    not exist (or the section is gone). Raises AwsUnreachable only."""
    active = ws_live is not None and ws_live.status == "ACTIVE"
    children, iam = wave2_desired(spec, region, identity, ws_live, files)
    to_read: list[Desired] = list(iam.resources)
    if active:
        to_read += children.resources
    applied_keys = [k for k in (parse_key(s) for s in applied) if k is not None]
    if not active:
        applied_keys = [k for k in applied_keys if k.kind not in AMP_CHILDREN]
    observed, orphans = read_children(
        gw,
        stack=spec.stack,
        workspace=ws_live if active else None,
        desired=to_read,
        previously_applied=applied_keys,
        cache=cache,
    )
    return Children(dict(observed), tuple(orphans))


def read_retries(
    book: RetryBook, observed: Mapping[ResourceKey, Live | Unreadable | None]
) -> tuple[float, ...]:
    """The book's wait for each read that failed for now (counted once per pass)."""
    return tuple(
        book.failed_temporarily(v.key, v.delay)
        for v in observed.values()
        if isinstance(v, Unreadable) and not v.permanent
    )
