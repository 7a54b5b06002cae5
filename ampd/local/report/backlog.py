"""RemoteWriteBacklog: how far Prometheus' remote write is behind, against the
workspace's out-of-order window. Pure.

AMP accepts a sample only within the workspace's out-of-order window
(``outOfOrderTimeWindowInSeconds``; 60 s when unset) behind the newest data it holds, which
every other writer keeps current. A queue that has fallen further behind than that -- the
upstream refused or throttled it for a while -- delivers samples AMP rejects as out of
order when they arrive. The lag is read from the managed Prometheus' own /metrics::

    prometheus_remote_storage_highest_timestamp_in_seconds            newest sample appended
    prometheus_remote_storage_queue_highest_sent_timestamp_seconds    newest sample sent,
                                                                      per queue (2.42: only
                                                                      after the first send)
"""

from __future__ import annotations

from ampd.core import Condition, ConditionStatus
from ampd.local.report.flow import families
from ampd.spec.models import StateSpec
from ampd.spec.types import duration_seconds

__all__ = [
    "BACKLOG",
    "DEFAULT_OUT_OF_ORDER_WINDOW",
    "backlog_condition",
    "out_of_order_window",
    "remote_write_lag",
]

BACKLOG = "RemoteWriteBacklog"
DEFAULT_OUT_OF_ORDER_WINDOW = 60.0  # seconds: AMP's window when the workspace sets none
APPENDED = "prometheus_remote_storage_highest_timestamp_in_seconds"
SENT = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"


def remote_write_lag(prom_text: str) -> float | None:
    """Seconds between the newest sample appended and the newest sample sent by the
    queue furthest behind; None when either is unknown (nothing appended, or nothing
    sent yet: then there is no "sent" to measure from)."""
    fams = families(prom_text)
    appended = max((v for _, v in fams.get(APPENDED, [])), default=0.0)
    sent = [v for _, v in fams.get(SENT, [])]
    if appended <= 0 or not sent or min(sent) <= 0:
        return None
    return max(0.0, appended - min(sent))


def out_of_order_window(spec: StateSpec) -> float | None:
    """The workspace's out-of-order window in seconds (AMP's 60 s when unset); None
    without a workspace."""
    ws = spec.workspace
    if ws is None:
        return None
    if ws.out_of_order_window is None:
        return DEFAULT_OUT_OF_ORDER_WINDOW
    return duration_seconds(ws.out_of_order_window)


def backlog_condition(spec: StateSpec, lag: float | None) -> Condition | None:
    """True when the remote-write lag exceeds the out-of-order window, False within it;
    None when there is nothing to judge (no workspace, no remote write, no lag read)."""
    window = out_of_order_window(spec)
    prom = spec.prometheus
    if window is None or lag is None or prom is None or prom.remote_write is None:
        return None
    if not prom.enabled:
        return None
    setting = "workspace.out_of_order_window" if _set(spec) else "AMP's default"
    if lag > window:
        return Condition(
            BACKLOG,
            ConditionStatus.TRUE,
            "BehindOutOfOrderWindow",
            f"remote write is {lag:.0f}s behind, more than the {window:.0f}s out-of-order "
            f"window ({setting}): AMP will reject those samples as out of order when they "
            "arrive",
        )
    return Condition(
        BACKLOG,
        ConditionStatus.FALSE,
        "WithinWindow",
        f"remote write is {lag:.0f}s behind, within the {window:.0f}s out-of-order window "
        f"({setting})",
    )


def _set(spec: StateSpec) -> bool:
    return spec.workspace is not None and spec.workspace.out_of_order_window is not None
