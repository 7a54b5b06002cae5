"""The seed's whole point, end to end on loopback: sample app -> real Prometheus (agent)
-> ampd's SigV4 proxy (IMDS role credentials) -> a SigV4-verifying AMP data plane ->
a real Prometheus receiver; the workspace, IAM, rule groups and alert manager made by
ampd in the AWS emulator; the query comes back through the signed query path."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.stack import Stack
from tests.harness.wait import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(tmp_path_factory.mktemp("e2e")) as st:
        st.ampd.write_state(st.state())
        st.ampd.start()
        yield st


def flowing(st: Stack, status: str) -> dict[str, Any] | None:
    c = st.ampd.condition("RemoteWriteFlowing")
    return c if c is not None and c["status"] == status else None


def signed_query(st: Stack, expr: str) -> Any:
    doc = st.ampd.status() or {}
    ws = doc["workspace"]["id"]
    proxy = json.loads((st.ampd.state_dir / "generated" / "proxy.json").read_text())["listen"]
    url = f"http://{proxy}/workspaces/{ws}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_samples_arrive_and_query_through_signed_path(stack: Stack) -> None:
    cond = wait_for(lambda: flowing(stack, "True"), timeout=90, what="RemoteWriteFlowing=True")
    assert cond["reason"] == "SamplesAccepted"
    assert stack.dataplane is not None
    assert stack.dataplane.accepted > 0
    # the proxy signed with the instance role handed out by the IMDS stand-in
    assert all(stack.imds.secret_for(k) for k in stack.dataplane.accepted_key_ids)
    res = wait_for(
        lambda: signed_query(stack, "ampd_demo_requests_total")["data"]["result"],
        timeout=30,
        what="the app's series in the workspace",
    )
    labels = res[0]["metric"]
    assert labels["job"] == "app"
    assert labels["cluster"] == "demo"
    assert labels["instance_id"] == stack.imds.instance_id
    assert labels["availability_zone"] == stack.imds.availability_zone
    assert labels["instance_type"] == stack.imds.instance_type
    # exactly one workspace, made by ampd, with the data plane URL the emulator reports
    assert len(stack.aws.workspace_ids("eu-west-1")) == 1
    assert stack.ampd.ampd("status").returncode == 0


def test_rejected_signatures_surface_as_not_flowing(stack: Stack) -> None:
    wait_for(lambda: flowing(stack, "True"), timeout=90, what="RemoteWriteFlowing=True")
    assert stack.dataplane is not None
    stack.dataplane.tamper = True
    try:
        cond = wait_for(
            lambda: flowing(stack, "False"), timeout=60, what="RemoteWriteFlowing=False"
        )
        assert cond["reason"] == "SamplesRejected"
        assert "HTTP 403" in cond["message"]
        assert stack.dataplane.rejected["bad_signature"] > 0
        status = stack.ampd.ampd("status")
        assert "RemoteWriteFlowing" in status.stdout
        assert status.returncode != 0
    finally:
        stack.dataplane.tamper = False
    wait_for(lambda: flowing(stack, "True"), timeout=60, what="flowing again")


def test_a_label_change_waits_for_the_queue_a_job_change_does_not(stack: Stack) -> None:
    wait_for(lambda: flowing(stack, "True"), timeout=90, what="RemoteWriteFlowing=True")
    proc = stack.ampd

    def drains(mark: int) -> list[dict[str, Any]]:
        return [e for e in proc.logs()[mark:] if e.get("event") == "remote_write.drain"]

    original = proc.state_file.read_text()
    state = yaml.safe_load(original)
    mark = proc.log_mark()
    state["prometheus"]["scrape_configs"].append({"job": "more", "targets": ["127.0.0.1:9"]})
    proc.write_state(state)
    proc.wait_applied(mark, ("file/prometheus.yml", "update"), timeout=30)
    assert drains(mark) == []  # scrape jobs only: the queue is kept, nothing to wait for

    mark = proc.log_mark()
    state["prometheus"]["external_labels"] = {"cluster": "demo-2"}
    proc.write_state(state)
    proc.wait_applied(mark, ("file/prometheus.yml", "update"), timeout=60)
    [drain] = drains(mark)
    assert drain["drained"] is True and drain["reason"] == "queue rebuilt by the reload"
    assert drain["waited_s"] < 15
    proc.write_state(original)  # leave the module's stack as the other tests expect
    wait_for(lambda: flowing(stack, "True"), timeout=60, what="flowing again")
