"""The ingest estimate printed after a plan's changes: a row per scrape job and a total
(targets, series, samples/s, samples/month, $/month, before -> after), where the prices
come from, and the budget. Pure: it reads the ``ingest`` document only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ingest_text"]


def _count(n: float) -> str:
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _dollars(fig: Mapping[str, Any] | None) -> str:
    if fig is None or fig.get("dollars_per_month") is None:
        return "-"
    return f"${fig['dollars_per_month']:,.2f}"


def _cell(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, key: str) -> str:
    def one(fig: Mapping[str, Any] | None) -> str:
        if fig is None:
            return "none"
        if key == "dollars_per_month":
            return _dollars(fig)
        if key == "samples_per_second":
            return f"{fig[key]:.1f}"
        return _count(float(fig[key]))

    a = one(after)
    return a if before is None or one(before) == a else f"{one(before)} -> {a}"


def _row(name: str, targets: str, before: Any, after: Any) -> str:
    cells = [
        _cell(before, after, k)
        for k in ("series", "samples_per_second", "samples_per_month", "dollars_per_month")
    ]
    return f"  {name:<20} {targets:>7} {cells[0]:>14} {cells[1]:>16} {cells[2]:>16} {cells[3]:>20}"


def ingest_text(doc: Mapping[str, Any], notes: list[str] | None = None) -> str:
    """``doc``: the ``ingest`` object of ``ampd plan --json``."""
    prices = doc.get("prices")
    fleet = doc["fleet_size"]
    lines = ["", f"What this host sends to AMP ({doc['region']}, per host of a fleet of {fleet}):"]
    lines.append(
        f"  {'JOB':<20} {'TARGETS':>7} {'SERIES':>14} {'SAMPLES/S':>16} "
        f"{'SAMPLES/MONTH':>16} {'$/MONTH':>20}"
    )
    for j in doc["jobs"]:
        lines.append(_row(j["job"], str(j["targets"]), j["before"], j["after"]))
        if j["unreadable"]:
            lines.append(f"    unreadable, counted as 0: {', '.join(j['unreadable'])}")
    total = doc["total"]
    lines.append(_row("total", "", total["before"], total["after"]))
    if prices is not None:
        lines.append(
            f"  prices: {prices['source']} as of {prices['as_of']} ({prices['currency']}); "
            "the tiers apply to the fleet's total; the free tier (40M samples a month) is "
            "not subtracted"
        )
    lines += [f"  {n}" for n in notes or []]
    budget = doc.get("budget")
    if budget is not None:
        lines.append(f"  budget: {'OVER: ' if budget['over'] else ''}{budget['reason']}")
    return "\n".join(line.rstrip() for line in lines) + "\n"
