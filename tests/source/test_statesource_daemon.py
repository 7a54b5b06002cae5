"""`ampd run --state ssm:NAME`: the daemon follows a state held in SSM Parameter Store,
applies a new version, and keeps the last good one running when a bad one is published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.harness.fixtures_aws import AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port, prometheus_pids
from tests.harness.wait import wait_for

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/prometheus").exists(), reason="needs Debian's prometheus package"
)

NAME = "/fleet/test/ampd"


def state(prom_port: int, jobs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(
        {
            "version": 1,
            "prometheus": {
                "listen": f"127.0.0.1:{prom_port}",
                "scrape_interval": "1s",
                "scrape_configs": jobs,
            },
            "metrics": {"enabled": False},
            "state_source": {"poll_interval": "5s"},
            "runtime": "supervisor",
        },
        sort_keys=False,
    )


def condition(proc: AmpdProcess, ctype: str, status: str) -> dict[str, Any] | None:
    c = proc.condition(ctype)
    return c if c is not None and c["status"] == status else None


def test_daemon_follows_an_ssm_state_and_keeps_the_last_good_one(
    tmp_path: Path, aws_emulator_env: AwsEnv
) -> None:
    ssm = boto3.client("ssm")
    port = free_port()
    ssm.put_parameter(Name=NAME, Value=state(port, []), Type="SecureString", Overwrite=True)
    proc = AmpdProcess(tmp_path, env={"AMPD_STATE": f"ssm:{NAME}"})
    proc.state_file = Path(f"ssm:{NAME}")  # what AmpdProcess passes as --state
    proc.start()
    try:
        doc = wait_for(
            lambda: (s := proc.status()) and s["health"] == "Healthy" and s,
            90,
            what="Synced and Healthy",
        )
        assert doc["spec"]["file"] == f"ssm:{NAME}"
        assert wait_for(
            lambda: condition(proc, "StateSourceValid", "True"), 30, what="StateSourceValid"
        )
        [pid] = prometheus_pids(str(proc.state_dir))

        jobs = [{"job": "extra", "targets": ["127.0.0.1:9"]}]
        ssm.put_parameter(Name=NAME, Value=state(port, jobs), Type="SecureString", Overwrite=True)
        generated = proc.state_dir / "generated" / "prometheus.yml"
        wait_for(
            lambda: 'job_name: "extra"' in generated.read_text(), 60, what="the new version applied"
        )
        assert prometheus_pids(str(proc.state_dir)) == [pid]  # reloaded, not restarted

        ssm.put_parameter(
            Name=NAME, Value="version: 1\nprometheus: [", Type="SecureString", Overwrite=True
        )
        bad = wait_for(
            lambda: condition(proc, "StateSourceValid", "False"), 60, what="StateSourceValid=False"
        )
        assert f"ssm:{NAME}:" in bad["message"]  # the position names the source
        assert 'job_name: "extra"' in generated.read_text()  # the last good one keeps running
        assert prometheus_pids(str(proc.state_dir)) == [pid]
        assert (proc.state_dir / "source").is_dir()  # the last good copy is cached
    finally:
        assert proc.stop() == 0


def test_daemon_holds_a_destructive_version_until_it_is_acknowledged(
    tmp_path: Path, aws_emulator_env: AwsEnv
) -> None:
    """Issue 22: a valid push that would stop Prometheus is held on a running host;
    `ampd status` and STATUS= (the status document's line) say so; the acknowledged
    document is applied."""
    ssm = boto3.client("ssm")
    port = free_port()
    jobs = [{"job": "node", "targets": ["127.0.0.1:9"]}]
    ssm.put_parameter(Name=NAME, Value=state(port, jobs), Type="SecureString", Overwrite=True)
    proc = AmpdProcess(tmp_path, env={"AMPD_STATE": f"ssm:{NAME}"})
    proc.state_file = Path(f"ssm:{NAME}")
    proc.start()
    try:
        wait_for(lambda: (s := proc.status()) and s["health"] == "Healthy", 90, what="Healthy")
        [pid] = prometheus_pids(str(proc.state_dir))
        generated = proc.state_dir / "generated" / "prometheus.yml"
        before = generated.read_text()
        stop = yaml.safe_load(state(port, jobs))
        stop["prometheus"]["enabled"] = False
        ssm.put_parameter(
            Name=NAME, Value=yaml.safe_dump(stop), Type="SecureString", Overwrite=True
        )
        held = wait_for(
            lambda: condition(proc, "StateSourceHeld", "True"), 60, what="StateSourceHeld=True"
        )
        assert held["message"].startswith(f"ssm:{NAME} version 2 held: stops Prometheus")
        line = wait_for(
            lambda: (s := proc.status()) and "StateSourceHeld" in s["line"] and s["line"],
            30,
            what="the held version in STATUS=",
        )
        assert "ampd apply --accept 2" in line
        assert (doc := proc.status()) is not None and doc["sync"] == "OutOfSync"  # exit 2
        assert generated.read_text() == before  # the last good version keeps running
        assert prometheus_pids(str(proc.state_dir)) == [pid]

        stop["rollout"] = {"allow_destructive": True}
        ssm.put_parameter(
            Name=NAME, Value=yaml.safe_dump(stop), Type="SecureString", Overwrite=True
        )
        wait_for(
            lambda: condition(proc, "StateSourceHeld", "False"), 60, what="StateSourceHeld=False"
        )
        wait_for(lambda: not prometheus_pids(str(proc.state_dir)), 60, what="Prometheus stopped")
    finally:
        assert proc.stop() == 0
