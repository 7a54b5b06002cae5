"""``ampd run`` keeps a real Prometheus in line with state.yml (supervisor runtime)."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_local import AmpdProcess, free_port, prometheus_pids
from tests.harness.prombins import HOST_BINARY, PromBin
from tests.harness.wait import wait_for

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(not HOST_BINARY.exists(), reason="needs Debian's prometheus package"),
]


def resource(proc: AmpdProcess, kind: str, name: str) -> dict[str, Any]:
    found = proc.resource(kind, name)
    assert found is not None, f"no {kind}/{name} in status"
    return found


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def scrape_jobs(listen: str) -> set[str]:
    data = get_json(f"http://{listen}/api/v1/targets")
    return {t["labels"]["job"] for t in data["data"]["activeTargets"]}


def base_state(
    prom_port: int,
    metrics_port: int,
    *,
    mode: str = "agent",
    jobs: list[dict[str, Any]] | None = None,
    binary: Path | None = None,
) -> dict[str, Any]:
    """``binary``: a Prometheus other than the spec's default (/usr/bin/prometheus)."""
    return {
        "version": 1,
        "stack": "test",
        "prometheus": {
            **({"binary": str(binary)} if binary else {}),
            "listen": f"127.0.0.1:{prom_port}",
            "mode": mode,
            "scrape_interval": "1s",
            "remote_write": None,
            "scrape_configs": jobs or [],
        },
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
    }


@pytest.fixture
def ports() -> tuple[int, int]:
    return free_port(), free_port()


def test_scrape_job_added_then_removed(
    ampd_proc: AmpdProcess, ports: tuple[int, int], prometheus_bin: PromBin
) -> None:
    """A scrape-job edit is a reload of the same agent-mode process, on each version."""
    prom, met = ports
    listen = f"127.0.0.1:{prom}"
    binary = prometheus_bin.binary
    ampd_proc.write_state(base_state(prom, met, binary=binary))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    wait_for(lambda: scrape_jobs(listen) == {"prometheus", "ampd"}, what="self-scrape jobs")

    mark = ampd_proc.log_mark()
    app = [{"job": "app", "targets": ["127.0.0.1:1"]}]
    ampd_proc.write_state(base_state(prom, met, jobs=app, binary=binary))
    ampd_proc.wait_applied(
        mark, ("file/prometheus.yml", "update"), ("process/prometheus", "reload")
    )
    wait_for(lambda: "app" in scrape_jobs(listen), what="job app live")

    ampd_proc.write_state(base_state(prom, met, binary=binary))
    ampd_proc.wait_spec()
    wait_for(lambda: "app" not in scrape_jobs(listen), what="job app gone")
    # the reloads kept the same Prometheus process
    assert len(ampd_proc.events("process.started")) == 1


def test_mode_flip_restarts_prometheus(
    ampd_proc: AmpdProcess, ports: tuple[int, int], prometheus_bin: PromBin
) -> None:
    """Agent to server is a restart (new flags), on each version."""
    prom, met = ports
    listen = f"127.0.0.1:{prom}"
    binary = prometheus_bin.binary
    ampd_proc.write_state(base_state(prom, met, mode="agent", binary=binary))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    flags = get_json(f"http://{listen}/api/v1/status/flags")["data"]
    assert "agent" in flags.get("enable-feature", "")
    pid_before = resource(ampd_proc, "process", "prometheus")["message"]

    mark = ampd_proc.log_mark()
    ampd_proc.write_state(base_state(prom, met, mode="server", binary=binary))
    ampd_proc.wait_applied(mark, ("process/prometheus", "restart"))
    ampd_proc.wait_healthy()
    flags = get_json(f"http://{listen}/api/v1/status/flags")["data"]
    assert "agent" not in flags.get("enable-feature", "")
    assert flags["storage.tsdb.path"].endswith("prometheus/server")
    assert resource(ampd_proc, "process", "prometheus")["message"] != pid_before
    # server mode answers queries; agent mode does not
    assert get_json(f"http://{listen}/api/v1/query?query=up")["status"] == "success"


def test_killed_prometheus_is_restarted(ampd_proc: AmpdProcess, ports: tuple[int, int]) -> None:
    prom, met = ports
    ampd_proc.write_state(base_state(prom, met))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    pid = int(resource(ampd_proc, "process", "prometheus")["message"].split()[-1])
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (
            (r := ampd_proc.resource("process", "prometheus"))
            and r["health"] == "Healthy"
            and r["message"] != f"pid {pid}"
        ),
        30,
        what="a new healthy prometheus",
    )
    assert ampd_proc.events("process.exited")[0]["code"] == -9


def test_hand_edit_of_generated_config_is_reverted(
    ampd_proc: AmpdProcess, ports: tuple[int, int]
) -> None:
    prom, met = ports
    ampd_proc.write_state(base_state(prom, met))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    generated = ampd_proc.state_dir / "generated" / "prometheus.yml"
    original = generated.read_bytes()
    generated.write_bytes(original + b"# a hand edit\n")
    wait_for(lambda: generated.read_bytes() == original, what="prometheus.yml restored")
    drift = wait_for(lambda: ampd_proc.events("drift.detected"), what="a drift event")
    assert drift[0]["name"] == "prometheus.yml"
    assert drift[0]["reason"] == "edited by hand"
    assert drift[0]["corrected"] is True


def test_hand_edit_only_reported_with_drift_report(
    ampd_proc: AmpdProcess, ports: tuple[int, int]
) -> None:
    prom, met = ports
    state = base_state(prom, met)
    state["aws"] = {"drift": "report"}
    ampd_proc.write_state(state)
    ampd_proc.start()
    ampd_proc.wait_healthy()
    generated = ampd_proc.state_dir / "generated" / "prometheus.yml"
    edited = generated.read_bytes() + b"# a hand edit\n"
    generated.write_bytes(edited)
    res = wait_for(
        lambda: (
            (r := ampd_proc.resource("file", "prometheus.yml")) and r["sync"] == "OutOfSync" and r
        ),
        what="file reported OutOfSync",
    )
    assert "drift reported" in res["message"]
    assert generated.read_bytes() == edited
    assert ampd_proc.events("drift.detected")[-1]["corrected"] is False
    assert ampd_proc.ampd("status").returncode == 2


def test_garbage_state_keeps_old_config_live(
    ampd_proc: AmpdProcess, ports: tuple[int, int]
) -> None:
    prom, met = ports
    listen = f"127.0.0.1:{prom}"
    ampd_proc.write_state(base_state(prom, met, jobs=[{"job": "app", "targets": ["127.0.0.1:1"]}]))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    generated = (ampd_proc.state_dir / "generated" / "prometheus.yml").read_bytes()

    ampd_proc.write_state("version: 1\nprometheus:\n  listen: [oops\n")
    doc = wait_for(
        lambda: s if (s := ampd_proc.status()) and not s["spec"]["valid"] else None,
        what="SpecValid=False",
    )
    assert doc["spec"]["error"].startswith(f"{ampd_proc.state_file}:4:1: YAML syntax")
    assert "line 3, column 11" in doc["spec"]["error"]
    cond = ampd_proc.condition("SpecValid")
    assert cond is not None and cond["status"] == "False"
    assert (ampd_proc.state_dir / "generated" / "prometheus.yml").read_bytes() == generated
    wait_for(lambda: "app" in scrape_jobs(listen), what="job app still live")
    assert resource(ampd_proc, "process", "prometheus")["health"] == "Healthy"
    human = ampd_proc.ampd("status")
    assert human.returncode == 3
    assert "INVALID" in human.stdout and "state.yml:4:1:" in human.stdout

    ampd_proc.write_state(base_state(prom, met))
    ampd_proc.wait_spec()
    wait_for(lambda: "app" not in scrape_jobs(listen), what="job app gone after the fix")
    assert resource(ampd_proc, "file", "prometheus.yml")["sync"] == "Synced"
    assert (ampd_proc.status() or {})["spec"]["valid"] is True


def test_sigterm_leaves_no_process_behind(ampd_proc: AmpdProcess, ports: tuple[int, int]) -> None:
    prom, met = ports
    ampd_proc.write_state(base_state(prom, met))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    marker = str(ampd_proc.state_dir)
    assert len(prometheus_pids(marker)) == 1
    assert ampd_proc.stop() == 0
    assert prometheus_pids(marker) == []


def test_crash_loop_is_degraded_with_stderr(
    ampd_proc: AmpdProcess, ports: tuple[int, int], tmp_path: Path
) -> None:
    prom, met = ports
    broken = trusted_dir() / "fake-prometheus"
    broken.write_text("#!/bin/sh\necho 'opening storage failed: lock held' >&2\nexit 3\n")
    broken.chmod(0o755)
    state = base_state(prom, met)
    state["prometheus"]["binary"] = str(broken)
    ampd_proc.write_state(state)
    ampd_proc.start()
    res = wait_for(
        lambda: (
            (r := ampd_proc.resource("process", "prometheus")) and r["health"] == "Degraded" and r
        ),
        40,
        what="prometheus Degraded",
    )
    assert "crash-looping (exit 3)" in res["message"]
    assert "lock held" in res["message"]
    assert ampd_proc.ampd("status").returncode == 3


def test_burst_of_edits_coalesces_and_last_wins(
    ampd_proc: AmpdProcess, ports: tuple[int, int]
) -> None:
    prom, met = ports
    listen = f"127.0.0.1:{prom}"
    ampd_proc.write_state(base_state(prom, met))
    ampd_proc.start()
    ampd_proc.wait_healthy()
    before = len(ampd_proc.events("reconcile.summary"))
    for i in range(50):
        ampd_proc.write_state(
            base_state(prom, met, jobs=[{"job": f"j{i}", "targets": ["127.0.0.1:1"]}])
        )
    ampd_proc.wait_spec()
    wait_for(lambda: scrape_jobs(listen) == {"prometheus", "ampd", "j49"}, what="last edit live")
    passes = len(ampd_proc.events("reconcile.summary")) - before
    assert 1 <= passes <= 15, passes
