"""RemoteWriteBacklog end to end: the daemon, its real Prometheus (agent mode) writing
through the signing proxy to the verifying data plane, and a workspace whose out-of-order
window is 5 s. While the data plane answers 503, Prometheus keeps retrying, its queue
falls behind the newest scrape, and once that lag passes the window the condition says
so; when the data plane answers again the queue catches up and the condition clears."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.harness.stack import Stack
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]


def condition(st: Stack, ctype: str, status: str) -> dict[str, Any] | None:
    c = st.ampd.condition(ctype)
    return c if c is not None and c["status"] == status else None


def test_a_queue_behind_the_out_of_order_window_is_reported_and_clears(
    tmp_path: Path,
) -> None:
    with Stack(tmp_path) as st:
        assert st.dataplane is not None
        state = st.state()
        state["workspace"]["out_of_order_window"] = "5s"
        state["aws"]["resync"] = "5s"  # a pass (and a fresh reading) every few seconds
        st.ampd.write_state(state)
        st.ampd.start()
        # samples reach the data plane first: the queue has a newest-sent timestamp
        wait_for(lambda: condition(st, "RemoteWriteFlowing", "True"), 90, what="flowing")
        st.dataplane.unavailable(503)
        behind = wait_for(
            lambda: condition(st, "RemoteWriteBacklog", "True"),
            90,
            what="RemoteWriteBacklog=True while the data plane answers 503",
        )
        assert behind["reason"] == "BehindOutOfOrderWindow"
        assert "5s out-of-order window (workspace.out_of_order_window)" in behind["message"]
        lag = int(behind["message"].removeprefix("remote write is ").split("s behind")[0])
        assert lag > 5
        status = st.ampd.ampd("status")
        assert "RemoteWriteBacklog" in status.stdout
        st.dataplane.healthy()
        within = wait_for(
            lambda: condition(st, "RemoteWriteBacklog", "False"),
            90,
            what="RemoteWriteBacklog=False once the queue caught up",
        )
        assert within["reason"] == "WithinWindow"
        assert st.dataplane.accepted > 0
