"""The human `ampd status` view, against a golden file (regenerate with
AMPD_UPDATE_GOLDEN=1 after a deliberate change, then review the diff)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ampd.engine.statusview import render_human

DATA = Path(__file__).parents[1] / "data"


def test_human_status_matches_golden() -> None:
    doc = json.loads((DATA / "status.json").read_text())
    out = render_human(doc)
    golden = DATA / "status_human.golden"
    if os.environ.get("AMPD_UPDATE_GOLDEN"):
        golden.write_text(out)
    assert out == golden.read_text()
