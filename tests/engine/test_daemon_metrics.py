"""ampd's own /metrics: the documented families, promtool-clean, scraped by its Prometheus."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.wait import wait_for
from tests.local.test_daemon_local import base_state, get_json

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/prometheus").exists(), reason="needs Debian's prometheus package"
)

FAMILIES = [
    "ampd_reconcile_duration_seconds_bucket",
    "ampd_reconcile_total",
    "ampd_resource_sync",
    "ampd_resource_health",
    "ampd_last_successful_reconcile_timestamp_seconds",
    "ampd_build_info",
    "ampd_spec_valid",
    "ampd_notify_dropped_total",
    "ampd_notify_failed_total",
]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def test_metrics_exposed_and_scraped(ampd_proc: AmpdProcess) -> None:
    prom, met = free_port(), free_port()
    ampd_proc.write_state(base_state(prom, met, mode="server"))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    text = wait_for(
        lambda: (
            (t := fetch(f"http://127.0.0.1:{met}/metrics"))
            and 'ampd_reconcile_total{outcome="ok"} 0.0' not in t
            and t
        ),
        what="a pass counted",
    )
    for family in FAMILIES:
        assert family in text, family
    assert (
        'ampd_resource_health{ampd_resource_health="Healthy",kind="process",name="prometheus"} 1.0'
    ) in text
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # the Prometheus ampd manages scrapes ampd itself
    listen = f"127.0.0.1:{prom}"
    res = wait_for(
        lambda: get_json(f"http://{listen}/api/v1/query?query=ampd_build_info")["data"]["result"],
        20,
        what="ampd_build_info scraped",
    )
    assert res[0]["metric"]["job"] == "ampd"
