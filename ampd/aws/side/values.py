"""The frozen values the AWS side's phases hand each other: what observe saw
(:class:`AwsSeen`), what plan decided (:class:`AwsPlan`, two :class:`Wave` s) and what
apply did (:class:`AwsDone`). No phase changes another's value; a phase builds its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ampd.aws.gateway.client import AwsReader, Identity
from ampd.aws.model import Desired, Live, Unreadable
from ampd.aws.observe import WorkspaceLookup
from ampd.core import Condition, Outcome, Plan, ResourceKey, WorkspaceRecord
from ampd.errors import AmpdError
from ampd.gateways.store import StoredState
from ampd.spec.models import StateSpec

__all__ = ["AwsDone", "AwsPlan", "AwsSeen", "Children", "Wave", "WorkspaceSeen"]

ObservedMap = Mapping[ResourceKey, Live | Unreadable | None]


@dataclass(frozen=True)
class WorkspaceSeen:
    """The workspace as observe found it: looked up (``workspace:`` in the spec), or,
    when the section was removed, what ampd.json remembers of the one it made."""

    lookup: WorkspaceLookup | None = None  # None: the spec has no workspace section
    orphan: Live | None = None  # the section is gone; this one is still there
    orphan_gone: bool = False  # the section is gone and so is the workspace


@dataclass(frozen=True)
class Children:
    """The workspace's children and IAM as observe read them (through the cache)."""

    observed: ObservedMap = field(default_factory=dict)
    orphans: tuple[Live, ...] = ()


@dataclass(frozen=True)
class AwsSeen:
    """Everything one AWS pass read, and nothing it wrote.

    ``failure`` set: AWS could not be asked at all (region unknown, unreachable,
    credentials rejected); ``retry_after`` is the retry book's wait for that."""

    spec: StateSpec
    stored: StoredState  # a copy of ampd.json as loaded: never written through
    region: str | None = None
    identity: Identity | None = None
    reader: AwsReader | None = None
    failure: AmpdError | None = None
    retry_after: float | None = None
    files: Mapping[str, bytes | None] = field(default_factory=dict)
    workspace: WorkspaceSeen = field(default_factory=WorkspaceSeen)
    children: Children = field(default_factory=Children)
    read_retries: tuple[float, ...] = ()  # the book's waits for what could not be read
    wall: float = 0.0  # wall clock of the pass, for last_change of what was applied
    started: float = 0.0  # monotonic clock at the start of the pass

    @property
    def live_workspace(self) -> Live | None:
        """The workspace as it is before apply (the one ampd manages, or an orphan)."""
        if self.workspace.orphan is not None:
            return self.workspace.orphan
        lookup = self.workspace.lookup
        return lookup.live if lookup is not None and isinstance(lookup.live, Live) else None


@dataclass(frozen=True)
class Wave:
    """One wave of the plan: what was wanted and read for it, and what it decided."""

    desired: Mapping[ResourceKey, Desired] = field(default_factory=dict)
    observed: ObservedMap = field(default_factory=dict)
    errors: Mapping[ResourceKey, str] = field(default_factory=dict)  # desired state unknown
    waiting: Mapping[ResourceKey, str] = field(default_factory=dict)  # not planned yet
    plan: Plan = field(default_factory=Plan)


@dataclass(frozen=True)
class AwsPlan:
    """Wave 1, the workspace (create, update, delete of an orphan); wave 2, its children
    and IAM. A wave 2 planned before the workspace exists plans its AMP children as
    creates on ``(known after apply)``; apply plans it again once wave 1 knows the id.

    ``forget`` names the ampd.json entries of resources found gone (apply drops them)."""

    spec: StateSpec
    wave1: Wave = field(default_factory=Wave)
    wave2: Wave = field(default_factory=Wave)
    forget: tuple[str, ...] = ()

    @property
    def plan(self) -> Plan:
        """Both waves, for printing."""
        return self.wave1.plan + self.wave2.plan

    @property
    def changes(self) -> int:
        return len(self.plan.changes)


@dataclass(frozen=True)
class AwsDone:
    """What apply did: outcomes, the workspace after it, what it read back, and the
    retry book's numbers for what failed."""

    outcomes: tuple[Outcome, ...] = ()
    workspace: Live | None = None  # after wave 1 (created, updated, or as it was)
    wave2: Wave | None = None  # wave 2 as planned again once the workspace was created
    read_back: ObservedMap = field(default_factory=dict)  # confirm_writes and re-reads
    record: WorkspaceRecord | None = None  # the workspace record as persisted
    stored: StoredState | None = None  # ampd.json's AWS part after apply
    role_check: Condition | None = None  # aws.mode observe: ObserveRoleReadOnly
    failure: AmpdError | None = None  # AWS became unreachable during apply
    retry_after: float | None = None  # the retry book's wait for that failure
    read_retries: tuple[float, ...] = ()  # waits for what a re-plan could not read
