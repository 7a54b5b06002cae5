"""Pure status: per-resource sync/health, conditions with transition times, the status
document (status.json, versioned), the one-line STATUS= roll-up, and exit codes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ampd.core import (
    Change,
    Condition,
    ConditionStatus,
    Health,
    Outcome,
    Plan,
    ResourceKey,
    ResourceStatus,
    SyncStatus,
)

STATUS_SCHEMA = "ampd.status/v1"
# A False here means metrics are not getting where they should: the host is Degraded.
DEGRADING_CONDITIONS = (
    "RemoteWriteFlowing",
    "AwsReachable",
    "WorkspaceActive",
    "AwsSideHealthy",
    "LocalSideHealthy",
    "ListenersOwned",  # a managed port held by another user (ampd.local.report.owners)
    "InstanceDataDropped",  # another instance's WAL kept after a start from an image
)
# Named for a problem: True is the problem (False is in line).
PROBLEM_CONDITIONS = ("IngestOverBudget", "RemoteWriteBacklog")
# A True here means samples will not be kept: the host is Degraded (AMP rejects samples
# older than its out-of-order window when they finally arrive).
DEGRADING_PROBLEMS = ("RemoteWriteBacklog",)


def iso(ts: float | None) -> str | None:
    return (
        None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    )


def merge_conditions(
    previous: Mapping[str, Condition], current: Sequence[Condition], now: float
) -> dict[str, Condition]:
    """Keep last_transition unless the status flipped."""
    out = dict(previous)
    for c in current:
        old = previous.get(c.type)
        keep = old is not None and old.status == c.status
        out[c.type] = replace(c, last_transition=old.last_transition if old and keep else now)
    return out


def rollup_sync(statuses: Sequence[ResourceStatus]) -> SyncStatus:
    if any(s.sync == SyncStatus.OUT_OF_SYNC for s in statuses):
        return SyncStatus.OUT_OF_SYNC
    if any(s.sync == SyncStatus.UNKNOWN for s in statuses):
        return SyncStatus.UNKNOWN
    return SyncStatus.SYNCED


@dataclass(frozen=True)
class PassSummary:
    reconcile_id: str
    started_at: float
    duration_s: float
    plan: Plan
    outcomes: Sequence[Outcome]
    statuses: Sequence[ResourceStatus]
    conditions: Mapping[str, Condition]
    spec_file: str
    spec_generation: int
    spec_sha256: str | None
    spec_error: str | None
    workspace: Mapping[str, Any] | None
    targets: int | None
    next_pass_at: float | None
    runtime: str
    errors: Sequence[Mapping[str, Any]] = field(default_factory=list)
    unobserved: Sequence[str] = field(default_factory=list)  # what could not be read
    # (section, listen) bound beyond loopback, each opted in with allow_non_loopback
    exposed: Sequence[tuple[str, str]] = field(default_factory=list)
    # the ingest side's estimate, measured rate and notes (ampd.ingest.report), JSON-able
    ingest: Mapping[str, Any] | None = None
    # the version of the state in force, as its source names it (SpecSource.version)
    spec_version: str | None = None
    spec_last_look: float | None = None  # a remote source's last look (SpecSource.last_look)

    @property
    def applied(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.ok)


def overall(summary: PassSummary) -> tuple[SyncStatus, Health]:
    sync = rollup_sync(summary.statuses)
    health = Health.worst([s.health for s in summary.statuses])
    if summary.spec_error is not None:
        sync = SyncStatus.OUT_OF_SYNC if sync == SyncStatus.SYNCED else sync
        health = Health.worst([health, Health.DEGRADED])
    held = summary.conditions.get("StateSourceHeld")  # the source has a version not run
    if held is not None and held.status == ConditionStatus.TRUE:
        sync = SyncStatus.OUT_OF_SYNC if sync == SyncStatus.SYNCED else sync
    for ctype in DEGRADING_CONDITIONS:
        c = summary.conditions.get(ctype)
        if c is not None and c.status == ConditionStatus.FALSE:
            health = Health.worst([health, Health.DEGRADED])
    for ctype in DEGRADING_PROBLEMS:
        c = summary.conditions.get(ctype)
        if c is not None and c.status == ConditionStatus.TRUE:
            health = Health.worst([health, Health.DEGRADED])
    return sync, health


def _condition_json(c: Condition) -> dict[str, Any]:
    return {
        "type": c.type,
        "status": c.status.value,
        "reason": c.reason,
        "message": c.message,
        "last_transition": iso(c.last_transition),
    }


def status_document(summary: PassSummary, *, pid: int, now: float) -> dict[str, Any]:
    sync, health = overall(summary)
    return {
        "schema": STATUS_SCHEMA,
        "generated_at": iso(now),
        "pid": pid,
        "runtime": summary.runtime,
        "sync": sync.value,
        "health": health.value,
        "line": status_line(summary),
        "spec": {
            "file": summary.spec_file,
            "generation": summary.spec_generation,
            "sha256": summary.spec_sha256,
            "version": summary.spec_version,
            "last_look": iso(summary.spec_last_look) if summary.spec_last_look else None,
            "valid": summary.spec_error is None,
            "error": summary.spec_error,
        },
        "workspace": dict(summary.workspace) if summary.workspace else None,
        "targets": summary.targets,
        "resources": [
            {
                "kind": s.key.kind.value,
                "name": s.key.name,
                "sync": s.sync.value,
                "health": s.health.value,
                "message": s.message,
                "last_change": iso(s.last_change),
            }
            for s in sorted(summary.statuses, key=lambda s: s.key)
        ],
        "conditions": [_condition_json(c) for _, c in sorted(summary.conditions.items())],
        "last_pass": {
            "id": summary.reconcile_id,
            "started_at": iso(summary.started_at),
            "duration_ms": round(summary.duration_s * 1000, 1),
            "applied": summary.applied,
            "failed": summary.failed,
            "drift": len(summary.plan.drift),
            "changes": [
                {
                    "key": str(o.change.key),
                    "action": o.change.action.value,
                    "ok": o.ok,
                    "reason": o.change.reason,
                    "message": o.message,
                }
                for o in summary.outcomes
            ],
            "skipped": [{"key": str(s.key), "reason": s.reason} for s in summary.plan.skipped],
        },
        "next_pass_at": iso(summary.next_pass_at),
        "errors": list(summary.errors),
        "listeners_beyond_loopback": [
            {"section": section, "listen": listen} for section, listen in summary.exposed
        ],
        "ingest": dict(summary.ingest) if summary.ingest is not None else None,
    }


def _worst_problem(summary: PassSummary) -> str | None:
    if summary.spec_error is not None:
        first = summary.spec_error.splitlines()[0]
        return f"state file invalid (keeping last good spec): {first}"
    bad = [s for s in summary.statuses if s.health in (Health.DEGRADED, Health.MISSING)]
    bad.sort(key=lambda s: -s.health.rank)
    if bad:
        s = bad[0]
        return f"{s.health.value}: {s.key} {s.message}".strip()
    for c in summary.conditions.values():
        if c.status == ConditionStatus.FALSE and c.type in ("AwsReachable", "RemoteWriteFlowing"):
            return f"{c.type}=False: {c.message or c.reason}"
    for ctype in (*DEGRADING_PROBLEMS, "StateSourceHeld"):
        problem = summary.conditions.get(ctype)
        if problem is not None and problem.status == ConditionStatus.TRUE:
            return f"{ctype}: {problem.message or problem.reason}"
    for ctype in ("StateSourceValid", "StateSourceCached"):
        source = summary.conditions.get(ctype)
        if source is not None and source.status == ConditionStatus.FALSE:
            return f"{ctype}=False: {source.message or source.reason}"
    return None


def status_line(summary: PassSummary) -> str:
    sync, health = overall(summary)
    problem = _worst_problem(summary)
    if problem is not None:
        return f"{sync.value} · {health.value} · {problem}"[:400]
    parts = [sync.value, health.value]
    if summary.workspace and summary.workspace.get("id"):
        parts.append(str(summary.workspace["id"]))
    if summary.targets is not None:
        parts.append(f"{summary.targets} targets")
    parts.append(f"{len(summary.plan.drift)} drift")
    parts.append(f"last pass {summary.duration_s * 1000:.0f} ms")
    return " · ".join(parts)


def exit_code(doc: Mapping[str, Any]) -> int:
    """ampd status: 0 synced and healthy, 2 drift/out of sync, 3 degraded."""
    if doc.get("health") in ("Degraded", "Missing", "Unknown"):
        return 3
    if doc.get("sync") != "Synced" or doc.get("health") != "Healthy":
        return 2
    return 0


def drift_signature(change: Change) -> str:
    return json.dumps([change.before, change.after], sort_keys=True, default=str)


def new_drift(
    seen: Mapping[ResourceKey, str], drift: Sequence[Change]
) -> tuple[list[Change], dict[ResourceKey, str]]:
    """The drift not reported before (new, or changed again), and what is now seen.

    Drift that is only reported (not corrected) stays in every plan; it is logged and
    counted once, not once per pass. Drift that went away is forgotten.
    """
    now = {c.key: drift_signature(c) for c in drift}
    fresh = [c for c in drift if seen.get(c.key) != now[c.key]]
    return fresh, now
