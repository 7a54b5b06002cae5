"""Pure: the estimate from the spec and what was seen, and the budget's verdict.

Per scrape job (the state's, and the two ampd adds: Prometheus itself and ampd's own
/metrics): its targets, the series a dry scrape of each found (an unreadable target
counts 0 and is named), plus the series Prometheus adds per target; the job's interval
(or ``prometheus.scrape_interval``); samples/s = series / interval. Dollars are the
Region's tiers applied to the fleet's total, divided by the fleet size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ampd.ingest.ha import HaGuard, ha_guard
from ampd.ingest.model import PER_TARGET_SERIES, Budget, Estimate, JobEstimate, Measured, Prices
from ampd.spec.models import ScrapeConfigSpec, StateSpec, duration_seconds

__all__ = [
    "IngestPlan",
    "IngestSeen",
    "budget_verdict",
    "estimate",
    "job_interval",
    "plan_ingest",
    "scrape_jobs",
    "target_url",
]


@dataclass(frozen=True)
class IngestSeen:
    region: str
    fleet_size: int
    # (job, target) -> the series a dry scrape found; None: unreadable
    scrapes: Mapping[tuple[str, str], int | None]
    prices: Prices | None  # chosen: state, price list, cache or built-in
    fresh_cache: bytes | None  # the cache file's new bytes when the Price List answered
    before: Mapping[str, Any] | None  # the last applied estimate (ampd.json)
    measured: Measured = field(default_factory=Measured)
    notes: tuple[str, ...] = ()
    # (job, target) -> why its count is a model's, not a scrape's (ampd.ingest.builtin)
    modeled: Mapping[tuple[str, str], str] = field(default_factory=dict)
    fleet_source: str | None = None  # where fleet_size comes from; None: not known (1)


@dataclass(frozen=True)
class IngestPlan:
    estimate: Estimate
    budget: Budget | None
    write_cache: bytes | None  # apply writes this price cache
    record: Mapping[str, Any]  # apply keeps this in ampd.json (the next plan's "before")
    ha: HaGuard | None = None  # cluster + __replica__ against AMP's 500 HA clusters


def job_interval(spec: StateSpec, job: ScrapeConfigSpec) -> float:
    assert spec.prometheus is not None
    return duration_seconds(job.interval or spec.prometheus.scrape_interval)


def target_url(job: ScrapeConfigSpec, target: str) -> str:
    return f"{job.scheme}://{target}{job.metrics_path}"


def scrape_jobs(spec: StateSpec) -> list[ScrapeConfigSpec]:
    """Every job the rendered prometheus.yml scrapes, in its order: Prometheus itself, ampd's
    own /metrics (when ``metrics.enabled`` and ``metrics.scrape``), then the state's jobs.
    What ampd adds is sent to AMP too, so it is estimated like the rest."""
    prom = spec.prometheus
    if prom is None:
        return []
    jobs = [ScrapeConfigSpec(job="prometheus", targets=[prom.listen])]
    if spec.metrics.enabled and spec.metrics.scrape:
        jobs.append(ScrapeConfigSpec(job="ampd", targets=[spec.metrics.listen]))
    return [*jobs, *prom.scrape_configs]


def estimate(spec: StateSpec, seen: IngestSeen) -> Estimate:
    """Per job and in total; a target estimated without a scrape is named in the notes."""
    jobs: list[JobEstimate] = []
    notes: list[str] = []
    for job in scrape_jobs(spec):
        counts = [seen.scrapes.get((job.job, t)) for t in job.targets]
        unreadable = tuple(t for t, n in zip(job.targets, counts, strict=True) if n is None)
        series = sum(n + PER_TARGET_SERIES for n in counts if n is not None)
        modeled = tuple(t for t in job.targets if (job.job, t) in seen.modeled)
        notes += [f"{job.job} ({t}): {seen.modeled[(job.job, t)]}" for t in modeled]
        jobs.append(
            JobEstimate(
                job.job, len(job.targets), job_interval(spec, job), series, unreadable, modeled
            )
        )
    return Estimate(seen.region, seen.prices, seen.fleet_size, tuple(jobs), (*seen.notes, *notes))


def budget_verdict(spec: StateSpec, est: Estimate) -> Budget | None:
    """The estimate against ``budget`` (None without one)."""
    b = spec.budget
    if b is None or (b.samples_per_second is None and b.fleet_samples_per_second is None):
        return None
    over: list[str] = []
    host, fleet = est.samples_per_second, est.fleet_samples_per_second
    if b.samples_per_second is not None and host > b.samples_per_second:
        over.append(
            f"the estimate of {host:.1f} samples/s is over budget.samples_per_second "
            f"({b.samples_per_second:g})"
        )
    if b.fleet_samples_per_second is not None and fleet > b.fleet_samples_per_second:
        over.append(
            f"the fleet's estimate of {fleet:.1f} samples/s ({est.fleet_size} hosts) is over "
            f"budget.fleet_samples_per_second ({b.fleet_samples_per_second:g})"
        )
    reason = "; ".join(over) if over else f"within budget ({host:.1f} samples/s estimated)"
    return Budget(b.samples_per_second, b.fleet_samples_per_second, bool(over), reason)


def plan_ingest(spec: StateSpec, seen: IngestSeen) -> IngestPlan:
    est = estimate(spec, seen)
    ha = ha_guard(spec, seen.fleet_size, seen.fleet_source)
    if ha is not None:
        est = replace(est, notes=(*est.notes, ha.reason))
    return IngestPlan(est, budget_verdict(spec, est), seen.fresh_cache, est.applied_json(), ha)
