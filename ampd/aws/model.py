"""The AWS wing's model: what a resource should be (``Desired``), what it is (``Live``),
what could not be read (``Unreadable``), and the keys and fingerprints that name them.
Pure values, shared by observe, plan, act and report."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ampd.core import Kind, ResourceKey
from ampd.errors import PermanentError, TemporaryError
from ampd.spec.models import StateSpec

MANAGED_TAG = "ampd:managed"
STACK_TAG = "ampd:stack"
TRANSITIONAL = frozenset({"CREATING", "UPDATING", "DELETING"})
FAILED = frozenset({"CREATION_FAILED", "UPDATE_FAILED"})
UNKNOWN_ID = "(known after apply)"
NOT_OWNED = "exists, not created by ampd"
IAM_KINDS = frozenset({Kind.IAM_ROLE, Kind.IAM_POLICY, Kind.INSTANCE_PROFILE})
# what AMP holds for the workspace: read and written only while it is ACTIVE
AMP_CHILDREN = frozenset(
    {
        Kind.WORKSPACE_CONFIGURATION,
        Kind.LOGGING,
        Kind.QUERY_LOGGING,
        Kind.RESOURCE_POLICY,
        Kind.RULE_GROUP,
        Kind.ALERTMANAGER,
    }
)
# an Outcome's message when a write found the resource edited since it was read (a
# resource policy's revision moved on): nothing was overwritten; the next pass reads again
CONCURRENT_EDIT = "edited concurrently"


@dataclass(frozen=True)
class Policy:
    stack: str
    mode: Literal["manage", "observe"] = "manage"
    drift: Literal["correct", "report"] = "correct"
    deletion: Literal["retain", "delete"] = "retain"


def policy_from_spec(spec: StateSpec) -> Policy:
    aws = spec.aws_or_default
    deletion = spec.workspace.deletion if spec.workspace is not None else "retain"
    return Policy(stack=spec.stack, mode=aws.mode, drift=aws.drift, deletion=deletion)


@dataclass(frozen=True)
class Desired:
    """What one resource should look like. ``present=False``: it should not exist."""

    key: ResourceKey
    fields: Mapping[str, Any] = field(default_factory=dict)
    present: bool = True
    immutable: frozenset[str] = frozenset()
    managed: bool = True  # False: observed and reported only (iam.*.manage: false)
    note: str = ""  # why it is not managed, for people
    refused: str = ""  # why the desired value itself must not be written (a foreign trust)


@dataclass(frozen=True)
class Live:
    """What one resource looks like in AWS."""

    key: ResourceKey
    fields: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def stack(self) -> str | None:
        """The ampd stack owning it, or None when ampd did not create it."""
        if self.tags.get(MANAGED_TAG) == "true":
            return self.tags.get(STACK_TAG)
        return None


@dataclass(frozen=True)
class Unreadable:
    """A resource that could not be read this pass (AccessDenied, throttled, ...)."""

    key: ResourceKey
    error: str
    permanent: bool = False
    delay: float = 5.0  # a temporary failure: the base of the wait (an AtLeast keeps Retry-After)

    @staticmethod
    def of(key: ResourceKey, e: PermanentError | TemporaryError) -> Unreadable:
        """The read of ``key`` failed with ``e``: permanent, or retried after its delay."""
        if isinstance(e, TemporaryError):
            return Unreadable(key, str(e), delay=e.delay)
        return Unreadable(key, str(e), permanent=True)


Observed = Mapping[ResourceKey, Live | Unreadable | None]


@dataclass(frozen=True)
class DesiredSet:
    resources: tuple[Desired, ...] = ()
    errors: Mapping[ResourceKey, str] = field(default_factory=dict)  # desired state unknown


# -- helpers ------------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """A comparable form: dict keys sorted, one-element lists unwrapped, lists sorted."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = [canonical(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    return value


def fingerprint(desired: Desired) -> str:
    body = {
        "present": desired.present,
        "fields": {k: v for k, v in desired.fields.items() if k not in desired.immutable},
    }
    raw = json.dumps(canonical(body), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def parse_key(text: str) -> ResourceKey | None:
    kind, sep, name = text.partition("/")
    try:
        k = Kind(kind)
    except ValueError:
        return None
    return ResourceKey(k, name) if sep and name else None


def ampd_tags(stack: str) -> dict[str, str]:
    return {MANAGED_TAG: "true", STACK_TAG: stack}


def workspace_key(spec: StateSpec) -> ResourceKey:
    return ResourceKey(Kind.WORKSPACE, spec.stack)
