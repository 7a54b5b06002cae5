"""The ingest side: what this host's scrape jobs will send to AMP and what that costs,
as a side like the two wings (``ampd.engine.side``): observe (dry scrapes, Prometheus'
own /metrics, prices; reads only), plan (the estimate and the budget; pure), apply (the
price cache and the applied estimate, through the writers it is handed), report (pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from ampd.core import SideResult
from ampd.engine.facts import Facts
from ampd.gateways.files import FileWriter
from ampd.gateways.store import Store, StoredState
from ampd.ingest.fleet import FleetCounter
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
    """``fleet_size``: ``ampd plan --fleet-size N`` (over ``cost.fleet_size``, over what
    the fleet's metrics say: ``ampd.ingest.fleet``; else 1, and the plan says so)."""

    name = "ingest"

    def __init__(
        self,
        observer: Observer,
        *,
        fleet_size: int | None = None,
        fleet: FleetCounter | None = None,
    ) -> None:
        self.observer = observer
        self.fleet_size = fleet_size
        self.fleet = fleet if fleet is not None else FleetCounter()

    def observe(self, spec: StateSpec, facts: Facts) -> IngestSeen:
        fleet = self.fleet.size(spec, facts, self.fleet_size)
        seen = self.observer.observe(spec, facts, fleet.size, fleet.source)
        if fleet.note is None:
            return seen
        return replace(seen, notes=(*seen.notes, fleet.note))

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
