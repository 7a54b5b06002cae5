"""Core value types shared by every layer: keys, actions, changes, plans, outcomes, status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any


class Kind(StrEnum):
    WORKSPACE = "aws.workspace"
    WORKSPACE_CONFIGURATION = "aws.workspace_configuration"
    LOGGING = "aws.logging"
    RULE_GROUP = "aws.rule_group"
    ALERTMANAGER = "aws.alertmanager"
    IAM_ROLE = "aws.iam_role"
    IAM_POLICY = "aws.iam_policy"
    INSTANCE_PROFILE = "aws.instance_profile"
    FILE = "file"
    PROCESS = "process"

    @property
    def is_aws(self) -> bool:
        return self.value.startswith("aws.")


@dataclass(frozen=True, order=True)
class ResourceKey:
    kind: Kind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"


class Action(StrEnum):
    """What a change does. Closed: nothing outside this enum is ever planned."""

    NOOP = "noop"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    RESTART = "restart"
    RELOAD = "reload"


@dataclass(frozen=True)
class FieldDiff:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change:
    key: ResourceKey
    action: Action
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    diffs: tuple[FieldDiff, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Skipped:
    """A difference policy forbids acting on (retain, observe mode, immutable field)."""

    key: ResourceKey
    reason: str
    diffs: tuple[FieldDiff, ...] = ()


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...] = ()
    drift: tuple[Change, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.changes and not self.drift

    def __add__(self, other: Plan) -> Plan:
        return Plan(
            self.changes + other.changes, self.drift + other.drift, self.skipped + other.skipped
        )


class SyncStatus(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class Health(Enum):
    """Ordered from best to worst; ``worst()`` rolls several up."""

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    MISSING = "Missing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"

    @property
    def rank(self) -> int:
        return list(Health).index(self)

    @staticmethod
    def worst(items: list[Health]) -> Health:
        return max(items, key=lambda h: h.rank) if items else Health.HEALTHY


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """What happened when one change was applied."""

    change: Change
    ok: bool
    message: str = ""
    retry_after: float | None = None
    permanent: bool = False


@dataclass(frozen=True)
class ResourceStatus:
    key: ResourceKey
    sync: SyncStatus
    health: Health
    message: str = ""
    last_change: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    name: str  # one of PROCESS_NAMES
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass(frozen=True)
class ProcessState:
    name: str
    running: bool
    pid: int | None = None
    started_at: float | None = None  # wall clock
    restarts: int = 0  # crashes restarted since the command last changed
    last_exit: int | None = None  # exit code or -signal
    crash_looping: bool = False
    last_stderr: tuple[str, ...] = ()
    command: Command | None = None  # what it runs now, as far as the runtime knows
    backoff_until: float | None = None  # wall clock; no restart before this after a crash
