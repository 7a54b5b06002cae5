"""The destructive-change guard: is a new remote state one that a fleet must not take
from a single push? Pure: two specs in, the reasons out.

A version is destructive for a host that runs ``before`` when it would:

- stop Prometheus (``prometheus.enabled: false``, or the section gone);
- drop ``prometheus.remote_write`` (the samples stop leaving the host);
- drop the workspace;
- drop more than half of the scrape jobs (by job name).

Such a version is held on running hosts until the document says
``rollout: {allow_destructive: true}`` or an operator accepts that version.
"""

from __future__ import annotations

from ampd.spec.models import StateSpec

__all__ = ["destructive_changes"]


def _jobs(spec: StateSpec) -> set[str]:
    prom = spec.prometheus
    if prom is None or not prom.enabled:
        return set()
    return {s.job for s in prom.scrape_configs}


def destructive_changes(before: StateSpec, after: StateSpec) -> list[str]:
    """What ``after`` would take away from a host running ``before`` (empty: nothing the
    guard holds back). ``after.rollout`` is not consulted here."""
    out: list[str] = []
    old, new = before.prometheus, after.prometheus
    prom_ran = old is not None and old.enabled
    prom_runs = new is not None and new.enabled
    if prom_ran and not prom_runs:
        gone = "prometheus.enabled is false" if new is not None else "no prometheus section"
        out.append(f"stops Prometheus ({gone})")
    elif (
        prom_ran
        and old is not None
        and new is not None
        and old.remote_write is not None
        and new.remote_write is None
    ):
        out.append("removes prometheus.remote_write (samples stop leaving the host)")
    if before.workspace is not None and after.workspace is None:
        out.append("removes the workspace")
    jobs_before, jobs_after = _jobs(before), _jobs(after)
    dropped = sorted(jobs_before - jobs_after)
    if prom_runs and jobs_before and 2 * len(dropped) > len(jobs_before):
        names = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
        out.append(f"drops {len(dropped)} of {len(jobs_before)} scrape jobs ({names})")
    return out


def held_back(
    before: StateSpec | None, after: StateSpec, accepted: bool
) -> tuple[list[str], str | None]:
    """(what ``after`` takes away, how it was let through). The reasons are held back
    unless the new version opts in (``rollout.allow_destructive``) or an operator accepted
    that version (``ampd apply --accept``); then ``how`` says which, and nothing is held."""
    if before is None:
        return [], None  # nothing runs yet: nothing to take away
    reasons = destructive_changes(before, after)
    if not reasons:
        return [], None
    if after.rollout.allow_destructive:
        return reasons, "rollout.allow_destructive"
    if accepted:
        return reasons, "ampd apply --accept"
    return reasons, None
