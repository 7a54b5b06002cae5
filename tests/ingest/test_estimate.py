"""The estimate's arithmetic, exactly: series, samples, tiers, the fleet, the budget."""

from __future__ import annotations

import json

import pytest

from ampd.ingest.exposition import count_series, sample_sum
from ampd.ingest.model import Tier, host_figures, tiered_dollars
from ampd.ingest.plan import IngestSeen, budget_verdict, estimate, plan_ingest
from ampd.ingest.prices import BUILT_IN, decode_cache, encode_cache, state_prices
from ampd.ingest.report import estimate_json
from ampd.spec.load import load_spec

US_EAST_1 = BUILT_IN["us-east-1"]


def test_one_host_of_1000_series_at_15s_is_175_2m_samples_and_15_77_dollars() -> None:
    fig = host_figures(1000, 1000 / 15, US_EAST_1, fleet=1)
    assert fig.samples_per_month == pytest.approx(175_200_000)
    assert fig.dollars_per_month == pytest.approx(15.768)
    assert fig.to_json()["dollars_per_month"] == 15.77


def test_a_thousand_such_hosts_pay_the_fleet_tiers_not_one_host_times_1000() -> None:
    fleet_month = 175_200_000 * 1000
    assert tiered_dollars(fleet_month, US_EAST_1.tiers) == pytest.approx(180 + 6062)
    fig = host_figures(1000, 1000 / 15, US_EAST_1, fleet=1000)
    assert fig.dollars_per_month is not None
    assert fig.dollars_per_month == pytest.approx(6.242)
    assert fig.dollars_per_month * 1000 < 15.768 * 1000  # the tiers, not N times one host
    assert fig.to_json()["dollars_per_month"] == 6.24


def test_the_third_tier_applies_above_252_billion() -> None:
    tiers = US_EAST_1.tiers
    assert tiered_dollars(300e9, tiers) == pytest.approx(200 * 0.90 + 25_000 * 0.35 + 4800 * 0.16)
    assert tiered_dollars(0, tiers) == 0
    assert tiered_dollars(2e9, tiers) == pytest.approx(180)


def test_a_single_open_tier() -> None:
    assert tiered_dollars(1e7, (Tier(None, 1.25),)) == pytest.approx(1.25)


def test_series_are_the_distinct_sample_lines() -> None:
    text = (
        "# HELP a_total A.\n# TYPE a_total counter\n"
        'a_total{x="1"} 3\na_total{x="2"} 4\na_total{x="2"} 4 1700000000\n'
        'b 1.5\n\nc_bucket{le="+Inf",v="a b"} 2\n# EOF\n'
    )
    assert count_series(text) == 4
    assert sample_sum('p_total{u="a"} 3\np_total{u="b"} 4\np_total_x 9\n', "p_total") == 7
    assert sample_sum("q 1\n", "p_total") is None


STATE = """\
version: 1
aws: {region: REGION}
prometheus:
  scrape_interval: 15s
  scrape_configs:
    - job: app
      targets: ["127.0.0.1:9101", "127.0.0.1:9102"]
    - job: slow
      interval: 60s
      targets: ["127.0.0.1:9103"]
"""


def _seen(region: str, fleet: int, **scrapes: int | None) -> IngestSeen:
    keyed = {
        ("app", "127.0.0.1:9101"): scrapes.get("a1"),
        ("app", "127.0.0.1:9102"): scrapes.get("a2"),
        ("slow", "127.0.0.1:9103"): scrapes.get("s1"),
    }
    prices = BUILT_IN.get(region)
    return IngestSeen(region, fleet, keyed, prices, None, None)


def test_every_rendered_job_is_estimated_and_unreadable_targets_count_zero() -> None:
    spec = load_spec(STATE.replace("REGION", "us-east-1"), "state.yml").spec
    est = estimate(spec, _seen("us-east-1", 1, a1=995, a2=None, s1=115))
    prom, own, app, slow = est.jobs  # the two jobs ampd renders first, then the state's
    assert (prom.job, prom.unreadable, prom.series) == ("prometheus", ("127.0.0.1:9090",), 0)
    assert (own.job, own.unreadable, own.interval_s) == ("ampd", ("127.0.0.1:9795",), 15.0)
    assert (app.series, app.interval_s, app.unreadable) == (1000, 15.0, ("127.0.0.1:9102",))
    assert (slow.series, slow.interval_s) == (120, 60.0)
    assert est.samples_per_second == pytest.approx(1000 / 15 + 2)


def test_an_unknown_region_says_so_and_shows_no_dollars() -> None:
    spec = load_spec(STATE.replace("REGION", "eu-south-2"), "state.yml").spec
    seen = _seen("eu-south-2", 1, a1=10, a2=10, s1=10)
    doc = estimate_json(plan_ingest(spec, seen), None)
    assert doc["prices"] is None
    assert doc["total"]["after"]["dollars_per_month"] is None
    assert all(j["after"]["dollars_per_month"] is None for j in doc["jobs"])


def test_the_budget_verdict_names_both_numbers() -> None:
    text = STATE.replace("REGION", "us-east-1") + "budget: {samples_per_second: 50}\n"
    spec = load_spec(text, "state.yml").spec
    b = budget_verdict(spec, estimate(spec, _seen("us-east-1", 1, a1=995, a2=None, s1=115)))
    assert b is not None and b.over
    assert "68.7 samples/s" in b.reason and "(50)" in b.reason
    fleet = STATE.replace("REGION", "us-east-1") + "budget: {fleet_samples_per_second: 1000}\n"
    spec = load_spec(fleet, "state.yml").spec
    b = budget_verdict(spec, estimate(spec, _seen("us-east-1", 20, a1=995, a2=None, s1=115)))
    assert b is not None and b.over and "20 hosts" in b.reason


def test_state_prices_override_and_the_cache_round_trips() -> None:
    text = STATE.replace("REGION", "eu-south-2") + (
        "cost:\n  fleet_size: 3\n  prices:\n    eu-south-2:\n      as_of: 2026-11-02\n"
        "      per_10m_samples:\n        - {up_to: 2000000000, usd: 0.99}\n"
        "        - {up_to: null, usd: 0.40}\n"
    )
    spec = load_spec(text, "state.yml").spec
    p = state_prices(spec.cost, "eu-south-2")
    assert p is not None and (p.source, p.as_of) == ("state", "2026-11-02")
    assert p.tiers == (Tier(2e9, 0.99), Tier(None, 0.40))
    back = decode_cache(encode_cache({"eu-south-2": p}))["eu-south-2"]
    assert (back.source, back.tiers) == ("cache", p.tiers)
    assert decode_cache(b"{not json") == {}
    assert json.loads(encode_cache({})) == {}


def test_ampd_own_job_is_left_out_when_prometheus_does_not_scrape_it() -> None:
    text = STATE.replace("REGION", "us-east-1") + "metrics: {scrape: false}\n"
    spec = load_spec(text, "state.yml").spec
    est = estimate(spec, _seen("us-east-1", 1, a1=1, a2=1, s1=1))
    assert [j.job for j in est.jobs] == ["prometheus", "app", "slow"]
