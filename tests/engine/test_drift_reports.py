"""Drift made in the emulated AWS and in a local file shows up in status, in the
structured (journald) log and in ampd's metrics — once per drift, not once per pass."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.harness.stack import Stack
from tests.harness.wait import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]


def metric_lines(listen: str, family: str) -> list[str]:
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [ln for ln in text.splitlines() if ln.startswith(family)]


def out_of_sync(st: Stack, kind: str, name: str) -> dict[str, Any] | None:
    r = st.ampd.resource(kind, name)
    return r if r is not None and r["sync"] == "OutOfSync" else None


def test_aws_and_file_drift_reported(tmp_path: Path) -> None:
    with Stack(tmp_path) as st:
        state = st.state()
        state["aws"]["drift"] = "report"
        state["aws"]["resync"] = "1s"
        st.ampd.write_state(state)
        st.ampd.start()
        st.ampd.wait_healthy(90)
        ws_id = (st.ampd.status() or {})["workspace"]["id"]
        amp = st.aws.client("amp", "eu-west-1")
        arn = amp.describe_workspace(workspaceId=ws_id)["workspace"]["arn"]
        amp.tag_resource(resourceArn=arn, tags={"team": "someone-else"})

        res = wait_for(
            lambda: out_of_sync(st, "aws.workspace", "demo"), 30, what="workspace OutOfSync"
        )
        assert res["health"] == "Healthy"
        tags = amp.list_tags_for_resource(resourceArn=arn)["tags"]
        assert tags["team"] == "someone-else"  # report only: not corrected

        generated = st.ampd.state_dir / "generated" / "prometheus.yml"
        generated.write_bytes(generated.read_bytes() + b"# by hand\n")
        wait_for(lambda: out_of_sync(st, "file", "prometheus.yml"), 30, what="file OutOfSync")

        # status.json and the log are two outputs of the pass: wait for the log line too
        def kinds() -> list[str]:
            return sorted({e["kind"] for e in st.ampd.events("drift.detected")})

        wait_for(lambda: "file" in kinds() or None, 30, what="file drift logged")
        assert kinds() == ["aws.workspace", "file"]
        events = st.ampd.events("drift.detected")
        assert all(e["corrected"] is False for e in events)
        listen = state["metrics"]["listen"]
        lines = metric_lines(listen, "ampd_drift_detected_total")
        assert 'ampd_drift_detected_total{kind="aws.workspace"} 1.0' in lines
        assert 'ampd_drift_detected_total{kind="file"} 1.0' in lines
        # several passes later, still counted once
        passes = len(st.ampd.events("reconcile.summary"))
        wait_for(
            lambda: len(st.ampd.events("reconcile.summary")) >= passes + 2, 30, what="more passes"
        )
        assert len([e for e in st.ampd.events("drift.detected") if e["kind"] == "file"]) == 1
        assert 'ampd_drift_detected_total{kind="file"} 1.0' in metric_lines(
            listen, "ampd_drift_detected_total"
        )
        status = st.ampd.ampd("status")
        assert status.returncode == 2, status.stdout
        assert "drift reported" in status.stdout
