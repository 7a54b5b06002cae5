"""A scrape job's ``sample_limit``, as ampd renders it, enforced by a real Prometheus in
agent mode (ampd's default): a target that exposes more samples than its job's limit
fails its scrape whole; the same target under a roomier limit is scraped."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import yaml

from ampd.local.render.context import RenderContext
from ampd.local.render.files import render_prometheus
from ampd.spec.load import load_spec
from tests.harness.aio import free_port
from tests.harness.prom import Prometheus
from tests.harness.prombins import PromBin
from tests.harness.sample_app import SampleApp
from tests.harness.wait import wait_for

pytestmark = pytest.mark.prometheus

EXCEEDED = "prometheus_target_scrapes_exceeded_sample_limit_total"


def _targets(prom: Prometheus) -> dict[str, dict[str, Any]]:
    """Active targets by job, from the targets API (served in agent mode too)."""
    with urllib.request.urlopen(f"{prom.url}/api/v1/targets?state=active", timeout=5) as r:
        active = json.load(r)["data"]["activeTargets"]
    return {t["labels"]["job"]: t for t in active}


def test_agent_fails_the_scrape_of_a_target_over_its_sample_limit(
    prometheus_bin: PromBin,
) -> None:
    port = free_port()
    with SampleApp() as app:
        state = {
            "version": 1,
            "prometheus": {
                "listen": f"127.0.0.1:{port}",
                "scrape_interval": "1s",
                "remote_write": None,
                "scrape_configs": [
                    # the sample app exposes five samples (two counters with their
                    # _created, one gauge)
                    {"job": "tight", "targets": [app.target], "sample_limit": 2},
                    {"job": "roomy", "targets": [app.target], "sample_limit": 1000},
                ],
            },
            "metrics": {"enabled": False},
        }
        spec = load_spec(yaml.safe_dump(state), "/etc/ampd/state.yml").spec
        ctx = RenderContext(source="/etc/ampd/state.yml", state_dir="/var/lib/ampd")
        config = render_prometheus(spec, ctx).decode()
        assert "    sample_limit: 2\n" in config
        with Prometheus(config, mode="agent", port=port, binary=str(prometheus_bin.binary)) as prom:
            wait_for(lambda: prom.own_metric(EXCEEDED) > 0, 30, what=f"{EXCEEDED} above zero")

            def both_scraped() -> dict[str, dict[str, Any]] | None:
                t = _targets(prom)
                scraped = all(t[job]["health"] != "unknown" for job in ("tight", "roomy"))
                return t if scraped else None

            found = wait_for(both_scraped, 30, what="both jobs scraped")
            assert found["tight"]["health"] == "down"
            assert "sample limit" in found["tight"]["lastError"]
            assert found["roomy"]["health"] == "up"
            assert found["roomy"]["lastError"] == ""
