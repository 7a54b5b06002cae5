"""The ingest estimate in the pass summary: the status document, the human status view,
the plan's text, ampd's own /metrics, and the condition that follows the measured rate."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from prometheus_client.exposition import generate_latest

from ampd.core import Condition, ConditionStatus, SideResult
from ampd.daemon.metrics import Metrics
from ampd.engine.ingesttext import ingest_text
from ampd.engine.reconcile import _in_line
from ampd.engine.status import PassSummary, status_document
from ampd.engine.statusview import render_human
from ampd.ingest.model import Measured
from ampd.ingest.plan import IngestSeen, plan_ingest
from ampd.ingest.prices import BUILT_IN
from ampd.ingest.report import ingest_document, over_budget
from ampd.spec.load import load_spec
from tests.harness.summaries import pass_summary

STATE = """\
version: 1
aws: {region: us-east-1}
budget: {samples_per_second: 60}
prometheus:
  scrape_configs:
    - {job: node, targets: ['127.0.0.1:9100']}
"""
SPEC = load_spec(STATE, "state.yml").spec


def _doc(measured: Measured, before: dict[str, Any] | None = None) -> dict[str, Any]:
    seen = IngestSeen(
        "us-east-1", 1, {("node", "127.0.0.1:9100"): 995}, BUILT_IN["us-east-1"], None, before
    )
    return ingest_document(plan_ingest(SPEC, seen), before, measured)


def _summary(ingest: dict[str, Any] | None) -> PassSummary:
    return pass_summary(outcomes=(), statuses=(), spec_file="state.yml", ingest=ingest)


def test_the_status_document_and_view_show_the_estimate_beside_the_measurement() -> None:
    ingest = _doc(Measured(70.2, 1004))
    doc = status_document(_summary(ingest), pid=1, now=2.0)
    assert json.loads(json.dumps(doc))["ingest"] == ingest
    est = doc["ingest"]["estimate"]
    assert est["total"]["after"] == {
        "series": 1000,
        "samples_per_second": 66.666667,
        "samples_per_month": 175_200_000.0,
        "dollars_per_month": 15.77,
    }
    assert est["budget"]["over"] is True
    human = render_human(doc)
    assert "ingest: estimated 1000 series, 66.7 samples/s, $15.77/month" in human
    assert "measured: 70.2 samples/s, 1004 active series" in human


def test_the_plan_text_shows_before_and_after() -> None:
    before = {
        "total": {
            "series": 500,
            "samples_per_second": 33.3,
            "samples_per_month": 87.6e6,
            "dollars_per_month": 7.88,
        },
        "jobs": {},
    }
    text = ingest_text(_doc(Measured(), before)["estimate"])
    total = next(line for line in text.splitlines() if line.strip().startswith("total"))
    assert "500 -> 1.0k" in total and "$7.88 -> $15.77" in total
    assert "prices: built-in as of 2026-12-01 (USD)" in text
    assert "budget: OVER: the estimate of 66.7 samples/s" in text


def test_over_budget_follows_the_measured_rate_only() -> None:
    assert over_budget(SPEC, Measured(None, 1000)) is None  # no measurement: no condition
    over = over_budget(SPEC, Measured(61.0, 1000))
    assert over is not None and over.status is ConditionStatus.TRUE
    assert over.message == "Prometheus sends 61.0 samples/s; budget.samples_per_second is 60"
    within = over_budget(SPEC, Measured(59.0, 1000))
    assert within is not None and within.status is ConditionStatus.FALSE
    no_budget = load_spec(STATE.replace("budget: {samples_per_second: 60}\n", ""), "s").spec
    assert over_budget(no_budget, Measured(61.0, 1000)) is None
    # a False IngestOverBudget is in line; a True one is not
    assert _in_line([SideResult(conditions=(within,))])
    assert not _in_line([SideResult(conditions=(over,))])
    assert _in_line([SideResult(conditions=(Condition("X", ConditionStatus.TRUE, "ok"),))])


def test_ampd_metrics_rank_hosts_by_samples_per_second() -> None:
    m = Metrics()
    m.observe(_summary(_doc(Measured(70.2, 1004))), 3.0, [])
    text = generate_latest(m.registry).decode()
    assert 'ampd_ingest_estimated_samples_per_second{job="node"} 66.666667' in text
    assert 'ampd_ingest_estimated_series{job="node"} 1000.0' in text
    assert "ampd_ingest_measured_samples_per_second 70.2" in text
    assert "ampd_ingest_active_series 1004.0" in text
    assert "ampd_ingest_estimated_dollars_per_month 15.77" in text
    m.observe(replace(_summary(_doc(Measured())), ingest=None), 4.0, [])
    text = generate_latest(m.registry).decode()
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in samples if line.startswith("ampd_ingest_")]  # unknown: none
