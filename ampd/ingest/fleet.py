"""The fleet's size, for the price tiers and the HA guard: ``ampd plan --fleet-size N``,
else ``cost.fleet_size``, else what ampd already knows from the fleet's metrics.

Every host that ships ampd's own metrics with its ``instance_id`` (the fleet dashboard's
rows) is one series of ``ampd_build_info`` per host in the workspace. A host that queries
its workspace -- the one whose Grafana data source does, with the instance role or the
role it assumes (``grafana.datasource``), which is the host to which ampd's host policy
grants ``aps:QueryMetrics`` (or ``sts:AssumeRole`` of that role) -- counts them so:
``count(count by (instance_id) (ampd_build_info))``, the hosts that shipped within the
query's lookback (5 minutes), through the workspace's query URL, signed with SigV4.
The answer is kept ``FLEET_TTL``; so is a refusal (no ``aps:QueryMetrics``), and the
plan then says the size is unknown instead of guessing. A host without that query path
asks nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ampd.engine.facts import Facts
from ampd.ingest import gateway
from ampd.spec.models import StateSpec

__all__ = ["FLEET_QUERY", "FLEET_TTL", "FleetCounter", "FleetSize"]

log = structlog.get_logger()

FLEET_QUERY = "count(count by (instance_id) (ampd_build_info))"
FLEET_TTL = 600.0  # the count (or the refusal) is kept this long
UNKNOWN = "fleet size unknown, pass --fleet-size"

Query = Callable[[str, str, str, str | None], gateway.Queried]


@dataclass(frozen=True)
class FleetSize:
    size: int  # 1 when not known
    source: str | None  # where it comes from; None: not known
    note: str | None = None  # why it is not known, for the plan


def _unqueryable(spec: StateSpec, facts: Facts) -> str | None:
    """Why the fleet's metrics cannot say its size, or None when they can be asked."""
    prom = spec.prometheus
    if spec.workspace is None or facts.workspace is None:
        return "no workspace to count the fleet in"
    if prom is None or "instance_id" not in prom.instance_labels:
        return "the hosts do not label what they ship with instance_id"
    if not (spec.metrics.enabled and spec.metrics.scrape):
        return "the hosts do not ship ampd's own metrics (metrics.scrape)"
    g = spec.grafana
    if g is None or not g.enabled:
        return "this host has no query path to its workspace: its Grafana is off"
    if g.datasource.auth == "keys":
        return "this host's Grafana queries with keys of its own"
    return None


class FleetCounter:
    """Counts the fleet's hosts from its metrics, at most once per ``FLEET_TTL``."""

    def __init__(
        self, query: Query | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._query: Query = query if query is not None else gateway.WorkspaceQuery()
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: tuple[str, float, FleetSize] | None = None  # (query URL, when, size)

    def size(self, spec: StateSpec, facts: Facts, flag: int | None) -> FleetSize:
        if flag is not None:
            return FleetSize(flag, "--fleet-size")
        if spec.cost is not None and spec.cost.fleet_size is not None:
            return FleetSize(spec.cost.fleet_size, "cost.fleet_size")
        why = _unqueryable(spec, facts)
        if why is not None or facts.workspace is None:
            return FleetSize(1, None, f"{UNKNOWN} ({why})")
        url, now = facts.workspace.query_url, self._clock()
        with self._lock:
            kept = self._kept
        if kept is not None and kept[0] == url and now - kept[1] < FLEET_TTL:
            return kept[2]
        role = spec.grafana.datasource.assume_role_arn if spec.grafana is not None else None
        counted = self._count(url, facts.workspace.region, role)
        with self._lock:
            self._kept = (url, now, counted)
        return counted

    def _count(self, url: str, region: str, role: str | None) -> FleetSize:
        got = self._query(url, region, FLEET_QUERY, role)
        if got.value is None:
            log.info("ingest.fleet_query_failed", error=got.error, denied=got.denied)
            why = (
                "this host may not query its workspace (aps:QueryMetrics)"
                if got.denied
                else f"the workspace's query did not answer: {got.error}"
            )
            return FleetSize(1, None, f"{UNKNOWN} ({why})")
        hosts = int(got.value)
        if hosts < 1:  # not even this host has shipped yet
            return FleetSize(1, None, f"{UNKNOWN} (no host has shipped ampd_build_info yet)")
        return FleetSize(hosts, f"fleet metrics: {hosts} hosts shipped ampd_build_info")
