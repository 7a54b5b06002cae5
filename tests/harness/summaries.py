"""One builder of a :class:`~ampd.engine.status.PassSummary` for tests of what is made
from a pass (the status document, the status line, ampd's own metrics): a pass that saw
``conditions`` and changed nothing; any other field by keyword."""

from __future__ import annotations

from typing import Any

from ampd.core import Condition, Plan
from ampd.engine.status import PassSummary

__all__ = ["pass_summary"]


# A pass of the supervisor runtime over /etc/ampd/state.yml that changed nothing.
QUIET: dict[str, Any] = {
    "reconcile_id": "r",
    "started_at": 1.0,
    "duration_s": 0.1,
    "plan": Plan(),
    "outcomes": [],
    "statuses": [],
    "spec_file": "/etc/ampd/state.yml",
    "spec_generation": 1,
    "spec_sha256": None,
    "spec_error": None,
    "workspace": None,
    "targets": None,
    "next_pass_at": None,
    "runtime": "supervisor",
}


def pass_summary(*conditions: Condition, **fields: Any) -> PassSummary:
    """``fields``: PassSummary's own (``ingest=``, ``statuses=``, ``started_at=``...)."""
    return PassSummary(**{**QUIET, "conditions": {c.type: c for c in conditions}, **fields})
