"""Conditions named for a problem: True is the problem, and a backlog beyond the
out-of-order window degrades the host and names itself on the status line."""

from __future__ import annotations

from ampd.core import Condition, ConditionStatus, Health
from ampd.engine.status import PassSummary, overall, status_line
from tests.harness.summaries import pass_summary


def summary(*conditions: Condition) -> PassSummary:
    return pass_summary(*conditions)


def test_a_backlog_beyond_the_window_degrades_and_names_itself() -> None:
    behind = Condition(
        "RemoteWriteBacklog", ConditionStatus.TRUE, "BehindOutOfOrderWindow", "7s behind, > 5s"
    )
    assert overall(summary(behind))[1] is Health.DEGRADED
    assert "RemoteWriteBacklog: 7s behind, > 5s" in status_line(summary(behind))


def test_within_the_window_is_in_line() -> None:
    within = Condition("RemoteWriteBacklog", ConditionStatus.FALSE, "WithinWindow", "")
    over = Condition("IngestOverBudget", ConditionStatus.FALSE, "WithinBudget", "")
    assert overall(summary(within, over))[1] is not Health.DEGRADED
    assert "RemoteWriteBacklog" not in status_line(summary(within, over))
