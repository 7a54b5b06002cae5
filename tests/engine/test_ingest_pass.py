"""The ingest side in the pass: it runs after the local side, its crash is its own
condition (not the host's health) and clears once it runs again, and a pass without
writers (a plan) applies nothing of it."""

from __future__ import annotations

from pathlib import Path

import yaml

from ampd.core import ConditionStatus
from ampd.engine.status import overall
from ampd.gateways.paths import Paths
from ampd.gateways.store import StoreView
from ampd.ingest.gateway import Fetched
from ampd.ingest.observe import Observer
from ampd.ingest.side import IngestSide
from ampd.wiring import reconciler
from tests.harness.fixtures_local import free_port
from tests.local.passes import FlakyRuntime


def _side(paths: Paths, broken: list[bool]) -> IngestSide:
    def scrape(url: str) -> Fetched:
        if broken[0]:
            raise RuntimeError("scrape exploded")
        return Fetched("a 1\n")

    view = StoreView(paths.store)
    return IngestSide(Observer(paths.state_dir, view, metrics=None, scrape=scrape))


def test_an_ingest_crash_is_its_own_condition_and_clears(tmp_path: Path) -> None:
    state = tmp_path / "state.yml"
    state.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "aws": {"region": "us-east-1"},
                "prometheus": {
                    "listen": f"127.0.0.1:{free_port()}",
                    "scrape_configs": [{"job": "app", "targets": ["127.0.0.1:9"]}],
                },
                "metrics": {"enabled": False},
            }
        )
    )
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    broken = [True]
    runtime = FlakyRuntime()
    runtime.broken = False
    rec = reconciler(state, paths, runtime, manage_processes=False, ingest=_side(paths, broken))
    try:
        first = rec.run_pass()
        cond = first.conditions["IngestSideHealthy"]
        assert cond.status is ConditionStatus.FALSE and "scrape exploded" in cond.message
        assert first.conditions["LocalSideHealthy"].status is ConditionStatus.TRUE
        assert first.ingest is None
        broken[0] = False
        second = rec.run_pass()
        assert second.conditions["IngestSideHealthy"].status is ConditionStatus.TRUE
        assert overall(first)[1] == overall(second)[1]  # the estimate is not the host's health
        assert second.ingest is not None
        jobs = {j["job"]: j for j in second.ingest["estimate"]["jobs"]}
        assert jobs["app"]["after"]["series"] == 6
        # the jobs ampd adds are read only from their owners: none is known here, so
        # Prometheus' own job is estimated from its model, and says so
        assert jobs["prometheus"]["unreadable"] == []
        assert len(jobs["prometheus"]["estimated_without_scrape"]) == 1
        assert jobs["prometheus"]["after"]["series"] > 0
        # an applying pass keeps the estimate for the next plan's "before"
        stored = StoreView(paths.store).load().ingest
        assert stored is not None and stored["jobs"]["app"]["series"] == 6
    finally:
        rec.close()
