"""The fleet view: ampd's dashboard has an instance_id variable and a table of hosts built
from ampd's own /metrics families; every panel's PromQL parses (real promtool); the demo
app's panels live with the demo, not in the product's dashboards."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from ampd.daemon.metrics import Metrics
from ampd.local.render.grafana import bundled_dashboards

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config/dashboards/demo-app.json"


def dashboards() -> dict[str, dict[str, Any]]:
    out = {name: json.loads(data) for name, data in bundled_dashboards().items()}
    out["demo-app.json"] = json.loads(DEMO.read_text())
    return out


def fleet_table() -> dict[str, Any]:
    d = dashboards()["ampd.json"]
    [table] = [p for p in d["panels"] if p["title"] == "Fleet: hosts"]
    assert isinstance(table, dict)
    return table


def as_query(expr: str) -> str:
    """What Grafana sends: its variables replaced."""
    return expr.replace("$__rate_interval", "1m").replace("$instance_id", ".*")


def test_instance_variable_lists_the_hosts() -> None:
    [var] = dashboards()["ampd.json"]["templating"]["list"]
    assert var["name"] == "instance_id"
    assert var["definition"] == "label_values(ampd_build_info, instance_id)"
    assert var["includeAll"] and var["multi"]
    assert var["allValue"] == ".*"  # also matches a host without instance labels


def test_hosts_table_has_one_row_per_host_and_the_five_columns() -> None:
    table = fleet_table()
    assert table["type"] == "table"
    assert all(t["format"] == "table" and t["instant"] for t in table["targets"])
    assert all("by (instance_id" in t["expr"] for t in table["targets"])
    organize = next(t for t in table["transformations"] if t["id"] == "organize")
    assert set(organize["options"]["renameByName"].values()) == {
        "spec valid",
        "resources out of sync",
        "seconds since last clean pass",
        "remote-write lag",
        "ampd version",
    }
    assert table["gridPos"]["y"] == 0  # the first thing on the dashboard


def test_every_panel_filters_by_the_instance_variable() -> None:
    d = dashboards()["ampd.json"]
    for panel in d["panels"]:
        for t in panel["targets"]:
            assert 'instance_id=~"$instance_id"' in t["expr"], (panel["title"], t["expr"])


def test_the_table_uses_families_ampd_exports() -> None:
    exported = generate_latest(Metrics().registry).decode()
    for family in (
        "ampd_spec_valid",
        "ampd_resource_sync",
        "ampd_last_successful_reconcile_timestamp_seconds",
        "ampd_build_info",
    ):
        assert f"# TYPE {family} " in exported, family
        assert family in " ".join(t["expr"] for t in fleet_table()["targets"])


def test_demo_panels_live_with_the_demo() -> None:
    product = [name for name in dashboards() if name != "demo-app.json"]
    for name in product:
        text = json.dumps(dashboards()[name])
        assert "ampd_demo_" not in text, name
    demo = dashboards()["demo-app.json"]
    assert demo["uid"] == "ampd-demo-app"
    exprs = " ".join(t["expr"] for p in demo["panels"] for t in p["targets"])
    assert "ampd_demo_requests_total" in exprs
    assert "ampd_demo_temperature_celsius" in exprs


def test_every_panel_query_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: scripts/bootstrap installs Debian's prometheus"
    exprs = [
        (name, panel["title"], as_query(t["expr"]))
        for name, d in dashboards().items()
        for panel in d["panels"]
        for t in panel["targets"]
    ]
    exprs += [("ampd.json", "variable", "ampd_build_info")]
    rules = {
        "groups": [
            {
                "name": "panels",
                "rules": [
                    {"record": f"panel:{i}", "expr": expr} for i, (_, _, expr) in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "panels.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    r = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(exprs)} rules found" in r.stdout


@pytest.mark.parametrize("broken", ["sum by (instance_id (up)", "rate(up[$__rate_interval)"])
def test_promtool_really_parses(tmp_path: Path, broken: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool
    path = tmp_path / "bad.yml"
    rule = {"record": "panel:x", "expr": as_query(broken)}
    path.write_text(json.dumps({"groups": [{"name": "g", "rules": [rule]}]}))
    r = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
