"""The values one local pass passes from phase to phase: what was seen
(:class:`LocalSeen`), what apply did and read back (:class:`LocalDone`). Frozen; the plan
itself is :class:`ampd.local.plan.local.LocalPlan`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ampd.core import Condition, Outcome, ProcessState, ResourceKey
from ampd.local.report.owners import Squat
from ampd.local.report.statuses import HealthProbe

__all__ = ["LocalDone", "LocalSeen", "Probed"]


@dataclass(frozen=True)
class Probed:
    """The managed processes as the runtime shows them, and what their ports answered."""

    processes: Mapping[str, ProcessState] = field(default_factory=dict)
    squatted: Mapping[str, Squat] = field(default_factory=dict)  # ports held by another user
    probes: Mapping[str, HealthProbe] = field(default_factory=dict)  # the running ones
    config_loaded: Condition | None = None  # PrometheusConfigLoaded (a healthy Prometheus)
    proxy_metrics: str | None = None  # the built-in proxy's own /metrics (ClockInSync)
    targets: int | None = None  # Prometheus' active scrape targets


@dataclass(frozen=True)
class LocalSeen:
    """What ``observe`` read: the generated files, ampd.json's record, the processes and
    their health, the remote-write evidence. No decision."""

    now: float  # wall clock, when it was read
    applied: Mapping[str, str]  # ampd.json: resource key -> sha256 ampd last wrote
    instance_id: str | None  # ampd.json: the instance the local state belongs to
    files: Mapping[str, str | None]  # generated file -> sha256 on disk (None: missing)
    prometheus_yml: bytes | None  # the prometheus.yml on disk, which Prometheus runs
    promtool: str | None  # the promtool that checks a new prometheus.yml
    listens: Mapping[str, str]  # process -> address, for those that should run
    probed: Probed
    flow: Condition | None  # RemoteWriteFlowing, from Prometheus' (and the proxy's) counters
    native_failed: bool  # the latch: this Prometheus claimed to sign natively and did not
    # seconds remote write is behind (newest appended - newest sent); None: not read
    remote_write_lag: float | None = None
    process_users: Mapping[str, str] = field(default_factory=dict)  # process -> its user
    last_change: Mapping[ResourceKey, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalDone:
    """What ``apply`` did, and what it read back after acting."""

    outcomes: tuple[Outcome, ...]
    conditions: tuple[Condition, ...]  # InstanceDataDropped, ImdsFenced
    probed: Probed  # the processes after acting
    last_change: Mapping[ResourceKey, float] = field(default_factory=dict)
