"""The state file's ``budget`` and ``cost`` sections: how many samples per second this
host (and its fleet) may send to AMP, and the prices an estimate is made with when the
built-in table or the AWS Price List should not be used."""

from __future__ import annotations

import datetime
import itertools
from typing import Annotated

from pydantic import Field, model_validator

from ampd.spec.types import Region, Strict

__all__ = ["BudgetSpec", "CostSpec", "PriceTierSpec", "RegionPriceSpec"]

Positive = Annotated[float, Field(gt=0)]


class BudgetSpec(Strict):
    # this host's samples per second (what its Prometheus sends); the fleet's, all hosts
    samples_per_second: Positive | None = None
    fleet_samples_per_second: Positive | None = None


class PriceTierSpec(Strict):
    # the tier ends at this many samples a month (counted from 0 for the whole account);
    # null: the last tier, without end
    up_to: Annotated[int, Field(gt=0)] | None
    usd: Annotated[float, Field(ge=0)]  # dollars per 10 million samples in this tier


class RegionPriceSpec(Strict):
    as_of: Annotated[datetime.date, Field(strict=False)]  # when these prices were read
    per_10m_samples: Annotated[list[PriceTierSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _tiers(self) -> RegionPriceSpec:
        ends = [t.up_to for t in self.per_10m_samples]
        if ends[-1] is not None:
            raise ValueError("the last tier of per_10m_samples must have up_to: null")
        if any(e is None for e in ends[:-1]):
            raise ValueError("only the last tier of per_10m_samples may have up_to: null")
        bounded = [e for e in ends if e is not None]
        if any(b <= a for a, b in itertools.pairwise(bounded)):
            raise ValueError("the tiers' up_to must ascend")
        return self


class CostSpec(Strict):
    # how many hosts run this state file: the tiers apply to the fleet's total
    fleet_size: Annotated[int, Field(ge=1)] | None = None
    # HA is intended: the number of HA clusters (distinct `cluster` values sent with a
    # `__replica__`) the fleet forms; AMP takes at most 500 per workspace. Unset, a fleet
    # of more than 500 hosts that sends both labels is refused (ampd.ingest.ha)
    ha_clusters: Annotated[int, Field(ge=1, le=500)] | None = None
    # prices per Region, used instead of the Price List and the built-in table
    prices: dict[Region, RegionPriceSpec] = Field(default_factory=dict)
