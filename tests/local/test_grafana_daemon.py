"""``ampd run`` keeps a Grafana in line with state.yml: the stand-in executable for the
process handling, a real Prometheus for every bundled dashboard query, and a real
grafana-server where one is installed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ampd.local.render.grafana import AMP_PLUGIN, bundled_dashboards
from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_aws import DATA_PLANE_URL, REGION, AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.prom import Prometheus, prometheus_available
from tests.harness.sample_app import SampleApp
from tests.harness.wait import wait_for

STANDIN = Path(__file__).parents[1] / "harness" / "grafana_standin.py"


def standin_binary(tmp: Path, version: str) -> str:
    path = trusted_dir() / "grafana-server"  # ampd runs only root's binaries
    path.write_text(
        "#!/bin/sh\n"
        f"export GRAFANA_STANDIN_VERSION={version}\n"
        f'exec {sys.executable} {STANDIN} "$@"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def state(grafana: dict[str, Any] | None, metrics_port: int) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "stack": "test",
        "aws": {"region": REGION, "data_plane_url": DATA_PLANE_URL},
        "workspace": {"alias": "grafana-test"},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
    }
    if grafana is not None:
        doc["grafana"] = grafana
    return doc


def events(ampd: AmpdProcess) -> list[dict[str, Any]]:
    path = ampd.state_dir / "data" / "grafana" / "standin-events.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines()]
    except FileNotFoundError:
        return []


def starts(ampd: AmpdProcess) -> list[dict[str, Any]]:
    return [e for e in events(ampd) if e["kind"] == "start"]


def admin_get(listen: str, path: str, password: str) -> Any:
    req = urllib.request.Request(f"http://{listen}{path}")
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def answers(listen: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{listen}/api/health", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_grafana_started_reloaded_restarted_and_stopped(
    aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess, tmp_path: Path
) -> None:
    user_dir = tmp_path / "user-dashboards"
    user_dir.mkdir()
    (user_dir / "mine.json").write_text(json.dumps({"uid": "mine", "title": "Mine", "panels": []}))
    port, metrics = free_port(), free_port()
    grafana = {
        "enabled": True,
        "binary": standin_binary(tmp_path, "12.0.2"),
        "listen": f"127.0.0.1:{port}",
        "datasource": {"name": "AMP"},
        "dashboards": [str(user_dir)],
    }
    ampd_proc.write_state(state(grafana, metrics))
    ampd_proc.start()
    res = wait_for(
        lambda: (r := ampd_proc.resource("process", "grafana")) and r["health"] == "Healthy" and r,
        40,
        what="grafana healthy",
    )
    pid = int(res["message"].split()[-1])
    (first,) = wait_for(lambda: starts(ampd_proc), what="the stand-in started")
    assert first["pid"] == pid
    ws_id = ampd_proc.status()["workspace"]["id"]  # type: ignore[index]
    (ds,) = first["datasources"]
    # grafana-server -v said 12.0.2: the Amazon Managed Prometheus plugin, SigV4 in Grafana.
    assert ds["type"] == AMP_PLUGIN
    assert ds["url"] == f"{DATA_PLANE_URL}/workspaces/{ws_id}"
    assert ds["jsonData"]["sigV4Auth"] is True
    assert ds["jsonData"]["sigV4Region"] == REGION
    assert {d["uid"] for d in first["dashboards"]} == {"ampd-host", "ampd-self", "mine"}
    password_file = ampd_proc.state_dir / "grafana-secrets" / "admin-password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o640  # ampd's; Grafana's group
    assert stat.S_IMODE(password_file.parent.stat().st_mode) == 0o750
    password = password_file.read_text().strip()

    # A data source change is reloaded through the admin API: same process.
    mark = ampd_proc.log_mark()
    ampd_proc.write_state(state({**grafana, "datasource": {"name": "AMP renamed"}}, metrics))
    actions = ampd_proc.wait_applied(mark, ("process/grafana", "reload"))
    assert ("process/grafana", "restart") not in actions
    reloads = [e for e in events(ampd_proc) if e["kind"] == "reload"]
    assert {(e["what"], e["ok"], e["pid"]) for e in reloads} == {
        ("datasources", True, pid),
        ("dashboards", True, pid),
    }
    names = [d["name"] for d in admin_get(f"127.0.0.1:{port}", "/api/datasources", password)]
    assert names == ["AMP renamed"]
    assert len(starts(ampd_proc)) == 1

    # A settings change (the listen address is in grafana.ini) restarts it.
    port2 = free_port()
    ampd_proc.write_state(
        state(
            {**grafana, "listen": f"127.0.0.1:{port2}", "datasource": {"name": "AMP renamed"}},
            metrics,
        )
    )
    wait_for(
        lambda: len(s := starts(ampd_proc)) == 2 and s[1]["listen"] == f"127.0.0.1:{port2}",
        what="a second start on the new port",
    )
    wait_for(
        lambda: (
            (r := ampd_proc.resource("process", "grafana"))
            and r["health"] == "Healthy"
            and r["message"] != f"pid {pid}"
        ),
        what="grafana healthy on the new port",
    )
    assert answers(f"127.0.0.1:{port2}")
    assert not answers(f"127.0.0.1:{port}")

    # grafana.enabled: false stops it.
    new_pid = starts(ampd_proc)[1]["pid"]
    ampd_proc.write_state(state({**grafana, "enabled": False}, metrics))
    ampd_proc.wait_spec()
    wait_for(lambda: not answers(f"127.0.0.1:{port2}"), what="the stand-in stopped")
    wait_for(
        lambda: (
            not Path(f"/proc/{new_pid}").exists()
            or "Z" in Path(f"/proc/{new_pid}/stat").read_text().split()[2]
        ),
        what="its process gone",
    )
    assert ampd_proc.resource("process", "grafana") is None


@pytest.mark.prometheus
@pytest.mark.skipif(not prometheus_available(), reason="needs Debian's prometheus package")
def test_every_dashboard_query_runs_on_a_real_prometheus(
    aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess
) -> None:
    metrics = free_port()
    ampd_proc.write_state(state(None, metrics))
    ampd_proc.start()
    app = SampleApp()
    app.start()
    port = free_port()
    config = (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: app\n    static_configs: [{{targets: ['{app.target}']}}]\n"
        f"  - job_name: ampd\n    static_configs: [{{targets: ['127.0.0.1:{metrics}']}}]\n"
        f"  - job_name: prometheus\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    prom = Prometheus(config, mode="server", remote_write_receiver=False, port=port)
    try:
        prom.start()
        # two scrapes of everything, so rate() has something to work on
        for expr in (
            "rate(ampd_demo_requests_total[1m])",
            "rate(ampd_reconcile_total[1m])",
            'ampd_aws_api_calls_total{code="OK"}',
        ):
            prom.wait_for(expr, timeout=30)
        end = time.time()
        checked = 0
        empty: list[str] = []
        for expr in sorted(set(_exprs())):
            # the fleet view's host variable: every host
            q = expr.replace("$__rate_interval", "1m").replace("$instance_id", ".*")
            assert "$" not in q, f"unresolved Grafana variable in {expr!r}"
            data = prom.api(
                "query_range", {"query": q, "start": str(end - 60), "end": str(end), "step": "1"}
            )
            assert data["resultType"] == "matrix"
            if not data["result"]:
                empty.append(expr)
            checked += 1
        assert checked >= 20
        # ampd's own series and the scrape's reach every panel that is about them.
        for needle in (
            "scrape_duration_seconds",
            "ampd_reconcile_total",
            "ampd_spec_valid",
            "ampd_aws_api_calls_total[",
            "ampd_build_info",
        ):
            assert not [e for e in empty if needle in e], (needle, empty)
    finally:
        prom.stop()
        app.stop()


def _exprs() -> list[str]:
    return [
        t["expr"]
        for data in bundled_dashboards().values()
        for p in json.loads(data)["panels"]
        for t in p["targets"]
    ]


def _real_grafana() -> str | None:
    for name in ("grafana-server", "grafana"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/sbin/grafana-server" if os.access("/usr/sbin/grafana-server", os.X_OK) else None


@pytest.mark.skipif(_real_grafana() is None, reason="no grafana-server on PATH (not in Debian)")
def test_real_grafana_loads_the_provisioning(
    aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess
) -> None:
    binary = _real_grafana()
    assert binary is not None
    port, metrics = free_port(), free_port()
    homepath = next((str(p) for p in (Path("/usr/share/grafana"),) if p.is_dir()), None)
    grafana: dict[str, Any] = {"enabled": True, "binary": binary, "listen": f"127.0.0.1:{port}"}
    if homepath:
        grafana["homepath"] = homepath
    ampd_proc.write_state(state(grafana, metrics))
    ampd_proc.start()
    wait_for(
        lambda: (r := ampd_proc.resource("process", "grafana")) and r["health"] == "Healthy",
        60,
        what="grafana healthy",
    )
    password = (ampd_proc.state_dir / "grafana-secrets" / "admin-password").read_text().strip()
    listen = f"127.0.0.1:{port}"
    ds = wait_for(
        lambda: admin_get(listen, "/api/datasources/uid/ampd-amp", password),
        what="the provisioned data source",
    )
    assert ds["jsonData"]["sigV4Auth"] is True
    found = wait_for(
        lambda: (
            {d["uid"] for d in admin_get(listen, "/api/search?type=dash-db", password)}
            >= {"ampd-host", "ampd-self"}
        ),
        what="the bundled dashboards",
    )
    assert found
