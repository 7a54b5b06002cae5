"""The synthetic high-cardinality app (tests/harness/cardinality_app.py) serves exactly
the N series it was asked for, the same N on every scrape: what the ingest benchmark
holds the estimate to."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.cardinality_app import DEFAULT_SERIES, PLAIN_SERIES, CardinalityApp
from tests.harness.prom import Prometheus


def scrape(app: CardinalityApp) -> tuple[str, str]:
    with urllib.request.urlopen(app.metrics_url, timeout=10) as r:
        return r.headers.get("Content-Type", ""), r.read().decode()


def series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one exposition, keyed by name and labels (a Prometheus-style parse)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"series {key} served twice"
            out[key] = s.value
    return out


@pytest.fixture(scope="module")
def app() -> Iterator[CardinalityApp]:
    with CardinalityApp() as a:
        yield a


def test_default_is_5000_series(app: CardinalityApp) -> None:
    content_type, text = scrape(app)
    assert content_type.startswith("text/plain; version=0.0.4")
    found = series(text)
    assert len(found) == DEFAULT_SERIES == 5000
    users = {dict(labels)["user"] for name, labels in found if name == "ampd_card_requests_total"}
    assert len(users) == DEFAULT_SERIES - PLAIN_SERIES
    assert found[("ampd_card_users", ())] == DEFAULT_SERIES - PLAIN_SERIES


def test_the_same_series_on_every_scrape_counters_rise(app: CardinalityApp) -> None:
    first = series(scrape(app)[1])
    second = series(scrape(app)[1])
    assert first.keys() == second.keys()
    assert second[("ampd_card_scrapes_total", ())] == first[("ampd_card_scrapes_total", ())] + 1
    rising = [k for k in first if k[0] == "ampd_card_requests_total" and second[k] > first[k]]
    assert len(rising) == DEFAULT_SERIES - PLAIN_SERIES


@pytest.mark.parametrize("n", [PLAIN_SERIES, 4, 10, 1234, 20_000])
def test_serves_exactly_n(n: int) -> None:
    with CardinalityApp(n) as a:
        assert len(series(scrape(a)[1])) == n
        assert a.scrapes == 1


def test_fewer_than_the_plain_series_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        CardinalityApp(PLAIN_SERIES - 1)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus")
def test_a_real_prometheus_scrapes_exactly_n() -> None:
    n = 2500
    with CardinalityApp(n) as a:
        config = (
            "global:\n  scrape_interval: 1s\nscrape_configs:\n"
            f"  - job_name: card\n    static_configs:\n      - targets: ['{a.target}']\n"
        )
        with Prometheus(config) as prom:
            got = prom.wait_for('scrape_samples_scraped{job="card"}', 30)
            assert float(got[0]["value"][1]) == n
            prom.wait_for(
                'count({job="card", __name__=~"ampd_card_.*"})',
                30,
                lambda r: bool(r) and float(r[0]["value"][1]) == n,
            )
