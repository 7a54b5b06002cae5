"""Pure values of the ingest side: price tiers, the figures of one job or a total, and
the tier math.

AMP bills the samples an account ingests in a month, in tiers per Region; the tiers apply
to everything the account sends, so a fleet's cost is the tiers applied to the fleet's
total (not one host's cost times the number of hosts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

HOURS_PER_MONTH = 730  # AWS's month for monthly estimates
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
PER_TARGET_SERIES = 5  # up, scrape_duration_seconds, scrape_samples_scraped,
# scrape_samples_post_metric_relabeling, scrape_series_added
PRICE_UNIT = 10_000_000  # prices are stated per 10 million samples
FREE_TIER_SAMPLES = 40_000_000  # a month; stated, never subtracted

FIGURE_KEYS = ("series", "samples_per_second", "samples_per_month", "dollars_per_month")

PriceSource = Literal["state", "price-list", "cache", "built-in"]


@dataclass(frozen=True)
class Tier:
    up_to: float | None  # samples a month where this tier ends; None: no end
    usd_per_10m: float


@dataclass(frozen=True)
class Prices:
    region: str
    as_of: str  # YYYY-MM-DD
    source: PriceSource
    tiers: tuple[Tier, ...]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "as_of": self.as_of, "currency": "USD"}


def tiered_dollars(samples_per_month: float, tiers: Sequence[Tier]) -> float:
    """Dollars for ``samples_per_month`` samples, each tier's share at its own price."""
    total, start = 0.0, 0.0
    for tier in tiers:
        end = samples_per_month if tier.up_to is None else min(samples_per_month, tier.up_to)
        if end > start:
            total += (end - start) / PRICE_UNIT * tier.usd_per_10m
        if tier.up_to is None or samples_per_month <= tier.up_to:
            break
        start = tier.up_to
    return total


@dataclass(frozen=True)
class Figures:
    series: int
    samples_per_second: float
    dollars_per_month: float | None = None  # None: no price known for the Region

    @property
    def samples_per_month(self) -> float:
        return self.samples_per_second * SECONDS_PER_MONTH

    def to_json(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "samples_per_second": round(self.samples_per_second, 6),
            "samples_per_month": round(self.samples_per_month, 3),
            "dollars_per_month": (
                None if self.dollars_per_month is None else round(self.dollars_per_month, 2)
            ),
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Figures | None:
        try:
            dollars = data.get("dollars_per_month")
            return Figures(
                int(data["series"]),
                float(data["samples_per_second"]),
                None if dollars is None else float(dollars),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class JobEstimate:
    job: str
    targets: int
    interval_s: float
    series: int  # active series of this job on this host, the per-target series included
    unreadable: tuple[str, ...] = ()  # targets that could not be read: counted as 0
    modeled: tuple[str, ...] = ()  # targets estimated without a scrape (a model's count)

    @property
    def samples_per_second(self) -> float:
        return self.series / self.interval_s


def host_figures(series: int, per_second: float, prices: Prices | None, fleet: int) -> Figures:
    """One host's figures: its dollars are the fleet's tiered total divided by the fleet."""
    if prices is None:
        return Figures(series, per_second)
    fleet_month = per_second * SECONDS_PER_MONTH * fleet
    return Figures(series, per_second, tiered_dollars(fleet_month, prices.tiers) / fleet)


@dataclass(frozen=True)
class Estimate:
    """What this host's scrape jobs send, per job and in total, priced for the fleet."""

    region: str
    prices: Prices | None
    fleet_size: int
    jobs: tuple[JobEstimate, ...]
    notes: tuple[str, ...] = ()  # what is not known (a Region without prices)

    @property
    def series(self) -> int:
        return sum(j.series for j in self.jobs)

    @property
    def samples_per_second(self) -> float:
        return sum(j.samples_per_second for j in self.jobs)

    def job_figures(self, job: JobEstimate) -> Figures:
        return host_figures(job.series, job.samples_per_second, self.prices, self.fleet_size)

    @property
    def total(self) -> Figures:
        return host_figures(self.series, self.samples_per_second, self.prices, self.fleet_size)

    @property
    def fleet_samples_per_second(self) -> float:
        return self.samples_per_second * self.fleet_size

    def applied_json(self) -> dict[str, Any]:
        """What is kept in ampd.json after an apply: the next plan's "before"."""
        return {
            "total": self.total.to_json(),
            "jobs": {j.job: self.job_figures(j).to_json() for j in self.jobs},
        }


@dataclass(frozen=True)
class Budget:
    samples_per_second: float | None
    fleet_samples_per_second: float | None
    over: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "samples_per_second": self.samples_per_second,
            "fleet_samples_per_second": self.fleet_samples_per_second,
            "over": self.over,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Measured:
    """What the managed Prometheus says of itself (None: not read, or not yet a rate)."""

    samples_per_second: float | None = None
    active_series: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
