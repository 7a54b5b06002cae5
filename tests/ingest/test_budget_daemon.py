"""IngestOverBudget end to end: the daemon, its real Prometheus (agent mode) sending
through the signing proxy to the data plane, and a budget far below what it sends. The
condition follows the MEASURED rate (``prometheus_remote_storage_samples_total`` between
two passes); the status document and ampd's own /metrics show the estimate beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ampd.gateways.http import request
from tests.harness.stack import Stack
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]


def over(st: Stack) -> dict[str, Any] | None:
    c = st.ampd.condition("IngestOverBudget")
    return c if c is not None and c["status"] == "True" else None


def test_a_measured_rate_over_the_budget_is_reported(tmp_path: Path) -> None:
    with Stack(tmp_path) as st:
        state = st.state(budget={"samples_per_second": 0.5})
        state["aws"]["resync"] = "5s"  # a pass, and a fresh reading, every few seconds
        st.ampd.write_state(state)
        st.ampd.start()
        c = wait_for(lambda: over(st), 90, what="IngestOverBudget=True")
        assert c["reason"] == "OverBudget"
        sent = float(c["message"].removeprefix("Prometheus sends ").split(" ")[0])
        assert sent > 0.5 and "budget.samples_per_second is 0.5" in c["message"]
        doc = st.ampd.status()
        assert doc is not None and doc["ingest"] is not None
        measured = doc["ingest"]["measured"]
        assert measured["samples_per_second"] > 0.5 and measured["active_series"] > 0
        est = doc["ingest"]["estimate"]
        jobs = {j["job"]: j for j in est["jobs"]}
        assert list(jobs) == ["prometheus", "ampd", "app"]  # as prometheus.yml scrapes them
        assert all(j["unreadable"] == [] and j["after"]["series"] > 5 for j in jobs.values())
        assert jobs["app"]["interval_s"] == 1.0
        human = st.ampd.ampd("status").stdout
        assert "ingest: estimated" in human and "measured:" in human
        metrics = request(f"http://{state['metrics']['listen']}/metrics").body
        assert 'ampd_ingest_estimated_samples_per_second{job="app"}' in metrics
        assert "ampd_ingest_measured_samples_per_second " in metrics
        assert "ampd_ingest_active_series " in metrics
