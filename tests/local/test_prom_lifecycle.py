"""No HTTP endpoint stops or reloads ampd's Prometheus; reloads are signals whose failure
the next pass still sees; status names every listener bound beyond loopback (#23).

Real ampd (supervisor runtime), real Prometheus."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ampd.engine.status import status_document
from ampd.engine.statusview import render_human
from ampd.gateways.paths import Paths
from ampd.wiring import reconciler
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.prombins import PromBin
from tests.harness.wait import wait_for
from tests.local.passes import FlakyRuntime
from tests.local.test_daemon_local import base_state, resource
from tests.local.test_reload_check import BAD


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def prom_pid(proc: AmpdProcess) -> int:
    return int(resource(proc, "process", "prometheus")["message"].split()[-1])


def post(url: str) -> int:
    req = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_post_quit_and_reload_do_not_reach_ampds_prometheus(
    ampd_proc: AmpdProcess, prometheus_bin: PromBin
) -> None:
    prom, met = free_port(), free_port()
    ampd_proc.write_state(base_state(prom, met, binary=prometheus_bin.binary))
    ampd_proc.start()
    ampd_proc.wait_healthy(60)
    pid = prom_pid(ampd_proc)
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--web.enable-lifecycle" not in cmd
    assert post(f"http://127.0.0.1:{prom}/-/quit") == 403  # "Lifecycle API is not enabled"
    assert post(f"http://127.0.0.1:{prom}/-/reload") == 403
    # the same process still serves: nothing stopped it, nothing restarted it
    mark = ampd_proc.log_mark()
    assert ampd_proc.proc is not None
    asked = time.time()
    ampd_proc.proc.send_signal(signal.SIGHUP)  # a pass that looks again
    status = ampd_proc.wait_pass_after(asked)
    assert Path(f"/proc/{pid}").exists()
    assert prom_pid(ampd_proc) == pid
    assert status["health"] == "Healthy"
    assert not [e for e in ampd_proc.logs()[mark:] if e.get("event") == "process.exited"]


def loaded(proc: AmpdProcess) -> dict[str, Any] | None:
    return proc.condition("PrometheusConfigLoaded")


def test_a_reload_that_failed_outside_ampd_is_reported_by_the_next_pass(
    ampd_proc: AmpdProcess, prometheus_bin: PromBin
) -> None:
    """An operator edits the generated file by hand (drift only reported) and signals
    Prometheus himself: Prometheus refuses it; ampd's next pass says so."""
    prom, met = free_port(), free_port()
    state = base_state(prom, met, binary=prometheus_bin.binary)
    state["aws"] = {"drift": "report"}
    ampd_proc.write_state(state)
    ampd_proc.start()
    ampd_proc.wait_healthy(60)
    wait_for(
        lambda: (c := loaded(ampd_proc)) and c["status"] == "True",
        what="PrometheusConfigLoaded=True",
    )
    pid = prom_pid(ampd_proc)
    (ampd_proc.state_dir / "generated" / "prometheus.yml").write_bytes(BAD)
    os.kill(pid, signal.SIGHUP)
    cond = wait_for(
        lambda: (c := loaded(ampd_proc)) and c["status"] == "False" and c,
        45,
        what="PrometheusConfigLoaded=False",
    )
    assert cond["reason"] == "ReloadFailed"
    assert prom_pid(ampd_proc) == pid  # it runs what it had; nothing was restarted
    assert "PrometheusConfigLoaded" in (ampd_proc.ampd("status").stdout)


def test_status_names_listeners_beyond_loopback(tmp_path: Path) -> None:
    spec = {
        "version": 1,
        "prometheus": {"enabled": False},
        "metrics": {"listen": f"0.0.0.0:{free_port()}", "allow_non_loopback": True},
    }
    rec = reconciler(
        write(tmp_path / "state.yml", spec),
        Paths(tmp_path / "lib", tmp_path / "run"),
        FlakyRuntime(),
        writes=False,
        manage_processes=False,
    )
    try:
        summary = rec.run_pass()
    finally:
        rec.close()
    doc = status_document(summary, pid=1, now=summary.started_at)
    listen = spec["metrics"]["listen"]  # type: ignore[index]
    assert doc["listeners_beyond_loopback"] == [{"section": "metrics", "listen": listen}]
    assert f"listening beyond loopback: metrics on {listen}" in render_human(doc)

    spec["metrics"] = {"listen": f"127.0.0.1:{free_port()}"}
    rec = reconciler(
        write(tmp_path / "state.yml", spec),
        Paths(tmp_path / "lib", tmp_path / "run"),
        FlakyRuntime(),
        writes=False,
        manage_processes=False,
    )
    try:
        summary = rec.run_pass()
    finally:
        rec.close()
    assert status_document(summary, pid=1, now=0.0)["listeners_beyond_loopback"] == []
