"""``ampd plan`` says what an edit costs: a real dry scrape of a real local app through a
real ``ampd plan --json``; the budget makes a plan exit 2 and an apply refuse, unless
``--over-budget``; the plan writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ampd.gateways.http import request
from ampd.gateways.promtool import binary_version
from ampd.ingest.builtin import PROMETHEUS_MODELS, nearest_release
from ampd.ingest.model import tiered_dollars
from ampd.ingest.prices import BUILT_IN
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.sample_app import SampleApp
from tests.ingest.states import host_state


@pytest.fixture
def app() -> Iterator[SampleApp]:
    a = SampleApp().start()
    try:
        yield a
    finally:
        a.stop()


def _series(url: str) -> int:
    """The app's series, counted by prometheus_client's own parser."""
    body = request(url).body
    return sum(len(f.samples) for f in text_string_to_metric_families(body))


def _state(app: SampleApp, **extra: Any) -> dict[str, Any]:
    jobs = [
        {"job": "app", "targets": [app.target]},
        {"job": "gone", "targets": [f"127.0.0.1:{free_port()}"], "interval": "60s"},
    ]
    return host_state({"scrape_interval": "15s", "scrape_configs": jobs}, **extra)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_json_has_the_estimate_of_a_real_dry_scrape(
    ampd_proc: AmpdProcess, app: SampleApp
) -> None:
    state = _state(app)
    ampd_proc.write_state(state)
    before = _files(ampd_proc.tmp)
    r = ampd_proc.ampd("plan", "--json", "--fleet-size", "1000")
    assert r.returncode == 2, r.stderr  # changes pending: nothing rendered yet
    ingest = json.loads(r.stdout)["ingest"]
    assert _files(ampd_proc.tmp) == before  # the plan wrote nothing
    expected = _series(app.metrics_url) + 5  # the series Prometheus adds per target
    jobs = {j["job"]: j for j in ingest["jobs"]}
    assert list(jobs) == ["prometheus", "app", "gone"]  # as prometheus.yml scrapes them
    app_job, gone = jobs["app"], jobs["gone"]
    # not running: estimated without a scrape, from the model of the release installed
    # here (Debian's 2.42 or 2.53), with its own job and two more, and no remote-write queue
    prom, listen = jobs["prometheus"], state["prometheus"]["listen"]
    assert (prom["unreadable"], prom["estimated_without_scrape"]) == ([], [listen])
    version = binary_version("/usr/bin/prometheus")
    assert version is not None
    m = PROMETHEUS_MODELS[nearest_release(version)]
    assert prom["after"]["series"] == m.own + 2 * m.per_job - m.per_queue + 5
    assert app_job["estimated_without_scrape"] == []
    # the sample app's counters move with each request: its series do not
    assert app_job["after"]["series"] == expected
    assert app_job["after"]["samples_per_second"] == pytest.approx(expected / 15, abs=1e-6)
    assert (app_job["targets"], app_job["interval_s"], app_job["before"]) == (1, 15.0, None)
    assert gone["unreadable"] == state["prometheus"]["scrape_configs"][1]["targets"]
    assert gone["after"]["series"] == 0
    assert ingest["fleet_size"] == 1000
    assert ingest["prices"] == {"source": "built-in", "as_of": "2026-12-01", "currency": "USD"}
    assert ingest["region"] == "us-east-1" and ingest["budget"] is None
    month = (expected / 15 + prom["after"]["samples_per_second"]) * 730 * 3600
    assert ingest["total"]["after"]["samples_per_month"] == pytest.approx(month, rel=1e-6)
    # the tiers apply to the fleet's total (beyond the first 2B: $0.35 per 10M), per host
    fleet = tiered_dollars(month * 1000, BUILT_IN["us-east-1"].tiers) / 1000
    assert month * 1000 > 2e9 and fleet < month * 0.9 / 1e7
    assert ingest["total"]["after"]["dollars_per_month"] == pytest.approx(fleet, abs=0.01)
    text = ampd_proc.ampd("plan", "--color", "never")
    assert "What this host sends to AMP (us-east-1, per host of a fleet of 1)" in text.stdout
    assert "prices: built-in as of 2026-12-01" in text.stdout
    ran, release = ".".join(map(str, version)), nearest_release(version)
    assert (
        f"estimated from Prometheus {ran} in agent mode,"
        f" modelled on Debian's {release[0]}.{release[1]}"
    ) in text.stdout
    assert f"prometheus ({listen}): not scraped (" in text.stdout  # and why


def test_over_budget_plan_exits_2_and_apply_refuses_until_told(
    ampd_proc: AmpdProcess, app: SampleApp
) -> None:
    ampd_proc.write_state(_state(app, budget={"samples_per_second": 0.5}))
    plan = ampd_proc.ampd("plan", "--json")
    assert plan.returncode == 2
    assert "over budget" in plan.stderr and "budget.samples_per_second (0.5)" in plan.stderr
    assert json.loads(plan.stdout)["ingest"]["budget"]["over"] is True

    refused = ampd_proc.ampd("apply", "--wait", "0")
    assert refused.returncode == 1
    assert "over budget, nothing applied" in refused.stderr
    assert not (ampd_proc.state_dir / "ampd.json").exists()
    assert not (ampd_proc.state_dir / "generated" / "prometheus.yml").exists()

    done = ampd_proc.ampd("apply", "--wait", "0", "--over-budget", "--json")
    assert done.returncode in (0, 2), done.stderr
    assert json.loads(done.stdout)["ingest"]["budget"]["over"] is True
    assert (ampd_proc.state_dir / "generated" / "prometheus.yml").exists()
    stored = json.loads((ampd_proc.state_dir / "ampd.json").read_text())
    assert stored["ingest"]["jobs"]["app"]["series"] == _series(app.metrics_url) + 5

    # the next plan shows that estimate as "before"
    again = json.loads(ampd_proc.ampd("plan", "--json").stdout)["ingest"]
    again_app = next(j for j in again["jobs"] if j["job"] == "app")
    assert again_app["before"] == stored["ingest"]["jobs"]["app"]
    assert again["total"]["before"] == stored["ingest"]["total"]


def test_a_plan_in_sync_but_over_budget_still_exits_2(
    ampd_proc: AmpdProcess, app: SampleApp
) -> None:
    state = _state(app)
    state["prometheus"]["enabled"] = False  # nothing to run: apply leaves it all in sync
    ampd_proc.write_state(state)
    applied = ampd_proc.ampd("apply", "--wait", "0")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    in_sync = ampd_proc.ampd("plan")
    assert in_sync.returncode == 0, in_sync.stdout + in_sync.stderr
    assert in_sync.stdout.startswith("No changes.")
    ampd_proc.write_state({**state, "budget": {"fleet_samples_per_second": 1}})
    over = ampd_proc.ampd("plan", "--fleet-size", "3")
    assert over.returncode == 2
    assert "No changes." in over.stdout
    assert "(3 hosts) is over budget.fleet_samples_per_second (1)" in over.stderr
