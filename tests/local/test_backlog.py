"""RemoteWriteBacklog, decided purely from Prometheus' own /metrics text (as Prometheus
2.42 and 2.53 print it) and the workspace's out-of-order window."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ampd.core import ConditionStatus
from ampd.local.report.backlog import (
    BACKLOG,
    backlog_condition,
    out_of_order_window,
    remote_write_lag,
)
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec

URL = "http://127.0.0.1:8005/workspaces/ws-1/api/v1/remote_write"
APPENDED = "prometheus_remote_storage_highest_timestamp_in_seconds"
SENT = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"


def metrics(appended: float | None, *sent: tuple[str, float]) -> str:
    lines = [
        f"# TYPE {APPENDED} gauge",
        f'prometheus_remote_storage_samples_pending{{remote_name="amp",url="{URL}"}} 12',
    ]
    if appended is not None:
        lines.append(f"{APPENDED} {appended:.9e}")
    lines.append(f"# TYPE {SENT} gauge")
    lines += [f'{SENT}{{remote_name="{name}",url="{URL}"}} {ts:.9e}' for name, ts in sent]
    return "\n".join(lines) + "\n"


def spec(workspace: dict[str, Any] | None = None, **prometheus: Any) -> StateSpec:
    doc: dict[str, Any] = {"version": 1, "prometheus": prometheus}
    if workspace is not None:
        doc["workspace"] = workspace
    return load_spec(yaml.safe_dump(doc), "/etc/ampd/state.yml").spec


@pytest.mark.parametrize(
    ("text", "lag"),
    [
        pytest.param(metrics(1796099700.0, ("amp", 1796099690.0)), 10.0, id="behind"),
        pytest.param(metrics(1796099700.0, ("amp", 1796099700.0)), 0.0, id="caught-up"),
        # sent can pass appended between the two reads of one page: never negative
        pytest.param(metrics(1796099700.0, ("amp", 1796099701.0)), 0.0, id="sent-ahead"),
        pytest.param(
            metrics(1796099700.0, ("amp", 1796099699.0), ("other", 1796099580.0)),
            120.0,
            id="worst-queue",
        ),
        # 2.42 prints no sent gauge before the first send; nothing to measure from
        pytest.param(metrics(1796099700.0), None, id="nothing-sent-242"),
        pytest.param(metrics(1796099700.0, ("amp", 0.0)), None, id="nothing-sent-zero"),
        pytest.param(metrics(None, ("amp", 1796099690.0)), None, id="nothing-appended"),
        pytest.param("", None, id="empty"),
    ],
)
def test_lag_from_prometheus_metrics(text: str, lag: float | None) -> None:
    assert remote_write_lag(text) == lag


def test_window_is_the_workspaces_or_amps_default() -> None:
    assert out_of_order_window(spec({"alias": "w", "out_of_order_window": "5s"})) == 5.0
    assert out_of_order_window(spec({"alias": "w", "out_of_order_window": "10m"})) == 600.0
    assert out_of_order_window(spec({"alias": "w"})) == 60.0
    assert out_of_order_window(spec(None, remote_write=None)) is None


def test_lag_over_the_window_is_a_backlog_naming_lag_and_window() -> None:
    lag = remote_write_lag(metrics(1796099700.0, ("amp", 1796099625.0)))
    c = backlog_condition(spec({"alias": "w"}), lag)
    assert c is not None
    assert (c.type, c.status, c.reason) == (
        BACKLOG,
        ConditionStatus.TRUE,
        "BehindOutOfOrderWindow",
    )
    assert "75s behind" in c.message
    assert "60s out-of-order window (AMP's default)" in c.message
    assert "reject" in c.message


def test_a_small_window_set_in_the_workspace_is_named() -> None:
    c = backlog_condition(spec({"alias": "w", "out_of_order_window": "5s"}), 6.0)
    assert c is not None and c.status == ConditionStatus.TRUE
    assert "6s behind" in c.message
    assert "5s out-of-order window (workspace.out_of_order_window)" in c.message


def test_lag_within_the_window_is_no_backlog() -> None:
    c = backlog_condition(spec({"alias": "w", "out_of_order_window": "5m"}), 75.0)
    assert c is not None
    assert (c.status, c.reason) == (ConditionStatus.FALSE, "WithinWindow")
    assert "75s behind, within the 300s" in c.message
    # exactly the window is still accepted
    at = backlog_condition(spec({"alias": "w", "out_of_order_window": "5s"}), 5.0)
    assert at is not None and at.status == ConditionStatus.FALSE


@pytest.mark.parametrize(
    ("state", "lag"),
    [
        pytest.param(spec(None, remote_write=None), 3600.0, id="prometheus-only"),
        pytest.param(spec({"alias": "w"}, remote_write=None), 3600.0, id="no-remote-write"),
        pytest.param(spec({"alias": "w"}, enabled=False), 3600.0, id="prometheus-off"),
        pytest.param(spec({"alias": "w"}), None, id="lag-unknown"),
    ],
)
def test_nothing_to_judge_is_no_condition(state: StateSpec, lag: float | None) -> None:
    assert backlog_condition(state, lag) is None
