"""One failing side never blocks the other: a slow or unreachable AWS leaves the local
pipeline running, and a slow AWS pass is picked up when it finishes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from ampd.core import Condition, ConditionStatus, SideResult
from ampd.engine.side import Facts
from ampd.gateways.paths import Paths
from ampd.gateways.supervisor import Supervisor
from ampd.spec.models import StateSpec
from ampd.wiring import reconciler
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.wait import wait_for


class SlowAws:
    """Stands in for the AWS side at the daemon's seam: its observe blocks until released."""

    name = "aws"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def observe(self, spec: StateSpec, facts: Facts) -> None:
        self.calls += 1
        self.release.wait(10)

    def plan(self, spec: StateSpec, facts: Facts, seen: None) -> None:
        return None

    def apply(self, plan: None, seen: None, writers: object) -> None:
        return None

    def report(
        self, spec: StateSpec, facts: Facts, seen: None, plan: None, done: None
    ) -> SideResult:
        return SideResult(
            conditions=(Condition("AwsReachable", ConditionStatus.TRUE, "Connected"),)
        )


def test_slow_aws_pass_does_not_hold_the_local_side(tmp_path: Path) -> None:
    state = tmp_path / "state.yml"
    state.write_text(
        "version: 1\nworkspace: {alias: a}\nprometheus: {enabled: false}\n"
        "metrics: {enabled: false}\n"
    )
    aws = SlowAws()
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    rec = reconciler(state, paths, Supervisor(), writes=False, aws=aws)  # type: ignore[arg-type]
    woken: list[bool] = []
    rec.on_aws_done = lambda: woken.append(True)
    first = rec.run_pass(aws_timeout=0.2)
    cond = first.conditions["AwsReachable"]
    assert (cond.status, cond.reason) == (ConditionStatus.UNKNOWN, "Slow")
    assert first.duration_s < 5
    aws.release.set()
    wait_for(lambda: woken, 10, what="the slow pass to report back")
    second = rec.run_pass(aws_timeout=0.2)
    assert second.conditions["AwsReachable"].status == ConditionStatus.TRUE
    assert aws.calls == 1  # the finished pass was used, not thrown away
    rec.close()


@pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus")
def test_unreachable_aws_leaves_local_pipeline_running(tmp_path: Path) -> None:
    proc = AmpdProcess(
        tmp_path,
        env={
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens there
            "AWS_ACCESS_KEY_ID": "AKIDTEST",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9/",
        },
    )
    prom = free_port()
    state: dict[str, Any] = {
        "version": 1,
        "aws": {"region": "eu-west-1"},
        "workspace": {"alias": "offline"},
        "prometheus": {"listen": f"127.0.0.1:{prom}", "scrape_interval": "1s"},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "runtime": "supervisor",
    }
    proc.write_state(state)
    proc.start()
    try:
        wait_for(
            lambda: (c := proc.condition("AwsReachable")) and c["status"] == "False",
            60,
            what="AwsReachable=False",
        )
        wait_for(
            lambda: (r := proc.resource("process", "prometheus")) and r["health"] == "Healthy",
            30,
            what="prometheus Healthy",
        )
        doc = proc.status() or {}
        assert doc["health"] in ("Degraded", "Unknown")  # AWS resources cannot be read
        assert "AwsReachable=False" in doc["line"]
        assert proc.ampd("status").returncode == 3
    finally:
        assert proc.stop() == 0
