"""Count lost samples exactly: the sample app's ``ampd_demo_scrapes_total`` reads k at its
k-th scrape, so a phase that ran from scrape ``first`` (exclusive) to ``last`` expects
the values first+1..last at the receiver, and every missing value is a lost sample."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tests.harness.prom import Prometheus

METRIC = "ampd_demo_scrapes_total"


def received_values(receiver: Prometheus, selector: str, window_s: int) -> set[int]:
    """Every value of ``METRIC{selector}`` the receiver holds from the last ``window_s``."""
    data = receiver.api("query", {"query": f"{METRIC}{{{selector}}}[{window_s}s]"})
    return {int(float(v)) for series in data["result"] for _, v in series["values"]}


def failed_scrapes(receiver: Prometheus, selector: str, start: float, end: float) -> int:
    """Scrapes that failed at the source (``up == 0``) between wall-clock ``start`` and
    ``end``: the app counted them, Prometheus got no sample, remote write never had it."""
    data = receiver.api("query", {"query": f"up{{{selector}}}[3600s]"})
    return sum(
        1
        for series in data["result"]
        for t, v in series["values"]
        if start <= float(t) <= end and float(v) == 0
    )


@dataclass(frozen=True)
class Phase:
    name: str
    first: int  # the app's scrape count when the phase began (not part of it)
    last: int  # ... and when it ended
    seconds: float

    @property
    def expected(self) -> int:
        return self.last - self.first

    def received(self, values: Iterable[int]) -> int:
        return sum(1 for v in set(values) if self.first < v <= self.last)

    def lost(self, values: Iterable[int]) -> int:
        return self.expected - self.received(values)

    def missing(self, values: Iterable[int]) -> list[int]:
        have = set(values)
        return [v for v in range(self.first + 1, self.last + 1) if v not in have]


def runs(values: list[int]) -> str:
    """1,2,3,7,9,10 -> '1-3, 7, 9-10' (for reports of which scrapes were lost)."""
    out: list[str] = []
    for v in sorted(values):
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) == v - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        elif out and "-" not in out[-1] and int(out[-1]) == v - 1:
            out[-1] = f"{out[-1]}-{v}"
        else:
            out.append(str(v))
    return ", ".join(out)
