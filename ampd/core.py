"""Core value types shared by every layer: keys, actions, changes, plans, outcomes, status."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any

# The packaged user of each managed process (units/ampd.sysusers, units/ampd-*.service).
# Here, not in ampd.gateways.users, because render needs the names too (the proxy's
# default allowed users) and render may not import gateways.
PROCESS_USERS: Mapping[str, str] = MappingProxyType(
    {
        "prometheus": "ampd-prometheus",
        "grafana": "ampd-grafana",
        "sigv4-proxy": "ampd-proxy",
    }
)


class Kind(StrEnum):
    WORKSPACE = "aws.workspace"
    WORKSPACE_CONFIGURATION = "aws.workspace_configuration"
    LOGGING = "aws.logging"
    QUERY_LOGGING = "aws.query_logging"
    RESOURCE_POLICY = "aws.resource_policy"
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


@dataclass(frozen=True)
class WorkspaceRecord:
    """Where the workspace is: enough to write to it and query it. Fleet-wide."""

    id: str
    region: str
    remote_write_url: str
    query_url: str
    arn: str | None = None
    alias: str | None = None

    @property
    def base_url(self) -> str:
        """The data-plane origin, e.g. https://aps-workspaces.eu-west-1.amazonaws.com."""
        return self.remote_write_url.split(f"/workspaces/{self.id}/", 1)[0]

    @staticmethod
    def at(
        ws_id: str,
        region: str,
        *,
        data_plane_url: str | None = None,
        arn: str | None = None,
        alias: str | None = None,
    ) -> WorkspaceRecord:
        """The record of workspace ``ws_id`` in ``region``: its URLs follow from both."""
        base = (data_plane_url or f"https://aps-workspaces.{region}.amazonaws.com").rstrip("/")
        api = f"{base}/workspaces/{ws_id}/api/v1"
        return WorkspaceRecord(ws_id, region, f"{api}/remote_write", f"{api}/query", arn, alias)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "region": self.region,
            "remote_write_url": self.remote_write_url,
            "query_url": self.query_url,
            "arn": self.arn,
            "alias": self.alias,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> WorkspaceRecord | None:
        try:
            return WorkspaceRecord(
                id=str(data["id"]),
                region=str(data["region"]),
                remote_write_url=str(data["remote_write_url"]),
                query_url=str(data["query_url"]),
                arn=str(data["arn"]) if data.get("arn") else None,
                alias=str(data["alias"]) if data.get("alias") else None,
            )
        except (KeyError, TypeError):
            return None


@dataclass(frozen=True)
class SideResult:
    """What one side's reconcile returns (controller-runtime's ``Result``, widened).

    ``unobserved`` lists what could not be read (AWS unreachable, access denied): a plan
    that could not see everything is an error, not "in sync" and not "changes pending".
    ``requeue_after`` is decided by the retry book, nowhere else.
    """

    plan: Plan = field(default_factory=Plan)
    outcomes: tuple[Outcome, ...] = ()
    statuses: tuple[ResourceStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()
    requeue_after: float | None = None
    unobserved: tuple[str, ...] = ()
    workspace: WorkspaceRecord | None = None  # the AWS side: where the workspace is
    targets: int | None = None  # the local side: Prometheus' active scrape targets
    ingest: Mapping[str, Any] | None = None  # the ingest side: its estimate, JSON-able

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (all of 127.0.0.0/8, ``::1``), as a listen
    address's host is written."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The instance metadata service's addresses (IPv4, and IPv6 on Nitro).
IMDS_ADDRESSES = ("169.254.169.254", "fd00:ec2::254")


def imds_denied(entries: Sequence[str]) -> bool:
    """Whether an IPAddressDeny= list (``systemctl show``: ``169.254.169.254/32
    fd00:ec2::254/128``) holds both IMDS addresses."""
    return all(any(is_imds(e, addr) for e in entries) for addr in IMDS_ADDRESSES)


def is_imds(entry: str, addr: str | None = None) -> bool:
    host, _, prefix = entry.partition("/")
    exact = prefix in ("", "32" if ":" not in host else "128")
    return exact and (host == addr if addr is not None else host in IMDS_ADDRESSES)
