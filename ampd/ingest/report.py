"""Pure: the ingest document (``ampd plan --json``'s ``ingest``, the status document's)
and the ``IngestOverBudget`` condition, which follows the MEASURED rate only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ampd.core import Condition, ConditionStatus
from ampd.ingest.model import FIGURE_KEYS, FREE_TIER_SAMPLES, Figures, Measured
from ampd.ingest.plan import IngestPlan
from ampd.spec.models import StateSpec

__all__ = ["estimate_json", "ingest_document", "over_budget"]


def _before(record: Mapping[str, Any] | None, job: str | None) -> dict[str, Any] | None:
    if record is None:
        return None
    data = record.get("total") if job is None else record.get("jobs", {}).get(job)
    if not isinstance(data, Mapping) or Figures.from_json(data) is None:
        return None  # not a figure (a hand-edited or foreign ampd.json): no "before"
    return {k: data.get(k) for k in FIGURE_KEYS}


def estimate_json(plan: IngestPlan, before: Mapping[str, Any] | None) -> dict[str, Any]:
    """Exactly the ``ingest`` object ``ampd plan --json`` prints."""
    est = plan.estimate
    return {
        "region": est.region,
        "prices": est.prices.to_json() if est.prices is not None else None,
        "fleet_size": est.fleet_size,
        "jobs": [
            {
                "job": j.job,
                "targets": j.targets,
                "interval_s": j.interval_s,
                "before": _before(before, j.job),
                "after": est.job_figures(j).to_json(),
                "unreadable": list(j.unreadable),
                "estimated_without_scrape": list(j.modeled),
            }
            for j in est.jobs
        ],
        "total": {"before": _before(before, None), "after": est.total.to_json()},
        "budget": plan.budget.to_json() if plan.budget is not None else None,
        "ha": plan.ha.to_json() if plan.ha is not None else None,
    }


def ingest_document(
    plan: IngestPlan, before: Mapping[str, Any] | None, measured: Measured
) -> dict[str, Any]:
    """The estimate, what Prometheus measured, and what is not known."""
    return {
        "estimate": estimate_json(plan, before),
        "measured": {
            "samples_per_second": measured.samples_per_second,
            "active_series": measured.active_series,
            "error": "; ".join(measured.notes) or None,  # why Prometheus was not read
        },
        "free_tier_samples_per_month": FREE_TIER_SAMPLES,
        "notes": list(plan.estimate.notes),
    }


def over_budget(spec: StateSpec, measured: Measured) -> Condition | None:
    """True when the measured samples/s is over ``budget.samples_per_second``; none
    without that budget or without a measurement."""
    limit = spec.budget.samples_per_second if spec.budget is not None else None
    rate = measured.samples_per_second
    if limit is None or rate is None:
        return None
    over = rate > limit
    return Condition(
        "IngestOverBudget",
        ConditionStatus.TRUE if over else ConditionStatus.FALSE,
        "OverBudget" if over else "WithinBudget",
        f"Prometheus sends {rate:.1f} samples/s; budget.samples_per_second is {limit:g}",
    )
