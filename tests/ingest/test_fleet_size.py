"""The fleet's size from the fleet's metrics: a host whose Grafana queries its workspace
counts the hosts that shipped ``ampd_build_info`` with an ``instance_id``, through the
SigV4-verifying data-plane stand-in (a real Prometheus behind it), keeps the count ten
minutes, and says "fleet size unknown" when it may not query or has no query path."""

from __future__ import annotations

import time
import urllib.request
import uuid
from typing import Any

from ampd.core import WorkspaceRecord
from ampd.engine.facts import Facts
from ampd.ingest.fleet import FLEET_QUERY, FLEET_TTL, FleetCounter
from ampd.ingest.gateway import WorkspaceQuery
from ampd.spec.models import StateSpec
from tests.harness.clock import FakeClock
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_dataplane import REGION, WORKSPACE_ID
from tests.harness.prom import Prometheus
from tests.harness.remote_write import HEADERS, body
from tests.harness.wait import wait_for


def _spec(grafana: bool = True) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "aws": {"region": REGION},
            "workspace": {"id": WORKSPACE_ID},
            "prometheus": {"instance_labels": ["instance_id"]},
            "grafana": {"enabled": grafana},
        }
    )


def _facts(dp: DataPlane) -> Facts:
    return Facts(workspace=WorkspaceRecord.at(WORKSPACE_ID, REGION, data_plane_url=dp.url))


def _ship(receiver: Prometheus, hosts: list[str]) -> None:
    """Each host's ampd_build_info, as its Prometheus would remote-write it."""
    now = int(time.time() * 1000)
    series = [
        ({"__name__": "ampd_build_info", "version": "0.1.0", "instance_id": h}, [(1.0, now)])
        for h in hosts
    ]
    req = urllib.request.Request(
        f"{receiver.url}/api/v1/write", data=body(series), headers=HEADERS, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 204)


def _hosts(dp: DataPlane) -> float:
    ws = _facts(dp).workspace
    assert ws is not None
    got = WorkspaceQuery()(ws.query_url, REGION, FLEET_QUERY, None)
    assert got.value is not None, got.error
    return got.value


def test_the_fleet_is_counted_from_its_metrics_and_kept(
    aws_env: str, dataplane: DataPlane, receiver_prometheus: Prometheus
) -> None:
    before = _hosts(dataplane)  # what other tests of this session shipped
    _ship(receiver_prometheus, [f"i-{uuid.uuid4().hex[:17]}" for _ in range(3)])
    wait_for(lambda: _hosts(dataplane) == before + 3, timeout=10, what="3 hosts counted")
    clock = FakeClock()
    counter = FleetCounter(clock=clock)
    asked = dataplane.accepted
    size = counter.size(_spec(), _facts(dataplane), None)
    assert (size.size, size.note) == (before + 3, None)
    assert size.source == f"fleet metrics: {before + 3:.0f} hosts shipped ampd_build_info"
    assert dataplane.accepted == asked + 1  # signed, verified, answered by Prometheus
    clock.advance(FLEET_TTL - 1)
    assert counter.size(_spec(), _facts(dataplane), None) == size
    assert dataplane.accepted == asked + 1  # kept
    clock.advance(2)
    counter.size(_spec(), _facts(dataplane), None)
    assert dataplane.accepted == asked + 2
    # the flag and the state's own figure come first, and ask nothing
    assert counter.size(_spec(), _facts(dataplane), 7).source == "--fleet-size"
    assert dataplane.accepted == asked + 2


def test_a_host_that_may_not_query_says_the_size_is_unknown(
    aws_env: str, bare_dataplane: DataPlane
) -> None:
    bare_dataplane.fault = (403, b'{"message": "not authorized to perform: aps:QueryMetrics"}')
    size = FleetCounter().size(_spec(), _facts(bare_dataplane), None)
    assert (size.size, size.source) == (1, None)
    assert size.note == (
        "fleet size unknown, pass --fleet-size "
        "(this host may not query its workspace (aps:QueryMetrics))"
    )


def test_a_host_without_a_query_path_asks_nothing(bare_dataplane: DataPlane) -> None:
    calls: list[Any] = []

    def query(*args: Any) -> Any:
        calls.append(args)
        raise AssertionError("asked")

    size = FleetCounter(query).size(_spec(grafana=False), _facts(bare_dataplane), None)
    assert size.size == 1 and size.source is None and calls == []
    assert size.note is not None and "its Grafana is off" in size.note
