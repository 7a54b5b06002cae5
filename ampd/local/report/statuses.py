"""The local side's status, computed from what one pass observed. Pure.

Generated files are Synced when they hold what ampd rendered, OutOfSync while a change
is pending, drift is only reported, or a write failed. Managed processes are Missing
when not running, Degraded when crash-looping or failing their health check, and
Progressing during a start-up grace period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ampd.core import (
    Health,
    Kind,
    Outcome,
    Plan,
    ProcessState,
    ResourceKey,
    ResourceStatus,
    SyncStatus,
)

STARTUP_GRACE = 30.0  # seconds a just-started process may take to become ready


@dataclass(frozen=True)
class HealthProbe:
    ok: bool
    detail: str


@dataclass(frozen=True)
class LocalSnapshot:
    files: Sequence[str]  # every generated file, by name
    plan: Plan
    outcomes: Sequence[Outcome]
    applied: bool  # False: a plan, whose changes are only pending
    processes: Mapping[str, ProcessState]  # what should run (or ran), as observed
    listens: Mapping[str, str]  # process name -> address, for those that should run
    probes: Mapping[str, HealthProbe]  # health of the running ones
    last_change: Mapping[ResourceKey, float]
    now: float


def _file_status(
    s: LocalSnapshot, key: ResourceKey, failed: Mapping[ResourceKey, str]
) -> ResourceStatus:
    last = s.last_change.get(key)
    if key in failed:
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.DEGRADED, failed[key], last)
    drift_only = {c.key for c in s.plan.drift} - {c.key for c in s.plan.changes}
    if key in drift_only:
        msg = "drift reported, not corrected"
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.HEALTHY, msg, last)
    if not s.applied and key in {c.key for c in s.plan.changes}:
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.HEALTHY, "change pending", last)
    return ResourceStatus(key, SyncStatus.SYNCED, Health.HEALTHY, "", last)


def _process_status(
    s: LocalSnapshot, name: str, failed: Mapping[ResourceKey, str]
) -> ResourceStatus:
    key = ResourceKey(Kind.PROCESS, name)
    last = s.last_change.get(key)
    st = s.processes.get(name)
    pending = not s.applied and key in {c.key for c in s.plan.changes}
    if st is None or not st.running:
        if st is not None and st.crash_looping:
            tail = " | ".join(st.last_stderr[-3:])
            msg = f"crash-looping (exit {st.last_exit}): {tail}"
            return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.DEGRADED, msg, last)
        msg = failed.get(key) or (
            "not running" if st is None or st.last_exit is None else f"exited with {st.last_exit}"
        )
        return ResourceStatus(key, SyncStatus.OUT_OF_SYNC, Health.MISSING, msg, last)
    sync = SyncStatus.OUT_OF_SYNC if key in failed or pending else SyncStatus.SYNCED
    probe = s.probes.get(name) or HealthProbe(False, "not probed")
    if probe.ok:
        health, msg = Health.HEALTHY, f"pid {st.pid}"
    elif st.started_at is not None and s.now - st.started_at < STARTUP_GRACE:
        health, msg = Health.PROGRESSING, f"starting: {probe.detail}"
    else:
        health, msg = Health.DEGRADED, probe.detail
    return ResourceStatus(key, sync, health, failed.get(key, msg), last, {"pid": st.pid})


def local_statuses(s: LocalSnapshot) -> list[ResourceStatus]:
    failed = {o.change.key: o.message for o in s.outcomes if not o.ok}
    out = [_file_status(s, ResourceKey(Kind.FILE, n), failed) for n in sorted(s.files)]
    out += [_process_status(s, n, failed) for n in sorted(s.listens)]
    return out
