"""The ingest side: what this host's scrape jobs will send to AMP and what that costs,
as a side like the two wings (``ampd.engine.side``): observe (dry scrapes, Prometheus'
own /metrics, prices; reads only), plan (the estimate and the budget; pure), apply (the
price cache and the applied estimate, through the writers it is handed), report (pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ampd.core import SideResult
from ampd.engine.facts import Facts
from ampd.gateways.files import FileWriter
from ampd.gateways.store import Store, StoredState
from ampd.ingest.observe import Observer
from ampd.ingest.plan import IngestPlan, IngestSeen, plan_ingest
from ampd.ingest.report import ingest_document, over_budget
from ampd.spec.models import StateSpec

__all__ = ["IngestDone", "IngestSide", "IngestWriters"]


class IngestWriters(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def files(self) -> FileWriter: ...


@dataclass(frozen=True)
class IngestDone:
    cached_prices: bool
    recorded: Mapping[str, Any] | None


class IngestSide:
    """``fleet_size``: ``ampd plan --fleet-size N`` (over ``cost.fleet_size``, else 1)."""

    name = "ingest"

    def __init__(self, observer: Observer, *, fleet_size: int | None = None) -> None:
        self.observer = observer
        self.fleet_size = fleet_size

    def observe(self, spec: StateSpec, facts: Facts) -> IngestSeen:
        cost_fleet = spec.cost.fleet_size if spec.cost is not None else None
        if self.fleet_size is not None:
            return self.observer.observe(spec, facts, self.fleet_size, "--fleet-size")
        if cost_fleet is not None:
            return self.observer.observe(spec, facts, cost_fleet, "cost.fleet_size")
        return self.observer.observe(spec, facts, 1, None)

    def plan(self, spec: StateSpec, facts: Facts, seen: IngestSeen) -> IngestPlan:
        return plan_ingest(spec, seen)

    def apply(self, plan: IngestPlan, seen: IngestSeen, writers: IngestWriters) -> IngestDone:
        cache_path: Path = self.observer.cache_path
        if plan.write_cache is not None:
            writers.files.write(cache_path, plan.write_cache, 0o640)
        record = dict(plan.record)

        def keep(state: StoredState) -> None:
            state.ingest = record

        writers.store.update(keep)
        return IngestDone(plan.write_cache is not None, record)

    def report(
        self,
        spec: StateSpec,
        facts: Facts,
        seen: IngestSeen,
        plan: IngestPlan,
        done: IngestDone | None,
    ) -> SideResult:
        cond = over_budget(spec, seen.measured)
        return SideResult(
            conditions=(cond,) if cond is not None else (),
            ingest=ingest_document(plan, seen.before, seen.measured),
        )
