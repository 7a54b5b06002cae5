"""A plan cannot write, by type: mypy --strict rejects every write a plan path could try
with what it holds, and accepts the same writes through ``Writers``."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from ampd.engine.side import Side
from ampd.wiring import Writers

REPO = Path(__file__).resolve().parents[2]

# What observe and plan hold on both wings: a StoreView, a RuntimeView and an AwsReader.
PLAN_PATH = """
from ampd.aws.gateway.client import AwsReader
from ampd.core import Command
from ampd.gateways.runtime import RuntimeView
from ampd.gateways.store import StoreView
from ampd.local.side.side import LocalSide
from ampd.aws.side.side import AwsSide


def plan_path(store: StoreView, runtime: RuntimeView, reader: AwsReader) -> None:
    store.update(lambda s: None)
    runtime.restart(Command("prometheus", ("x",)))
    runtime.reload("prometheus")
    reader.create_workspace("alias", {}, "token", None)
    reader.delete_rule_group("ws", "rules")


def sides(local: LocalSide, aws: AwsSide) -> None:
    local.runtime.start(Command("prometheus", ("x",)))
    aws.store.update(lambda s: None)
"""

APPLY_PATH = """
from ampd.aws.gateway.client import AwsReader
from ampd.core import Command
from ampd.wiring import Writers


def apply_path(writers: Writers, reader: AwsReader) -> None:
    writers.store.update(lambda s: None)
    writers.processes.restart(Command("prometheus", ("x",)))
    writers.aws.writer(reader).delete_rule_group("ws", "rules")
    writers.files.write(writers.store.path, b"")
"""


def mypy(tmp_path: Path, name: str, code: str) -> tuple[int, str]:
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return res.returncode, res.stdout + res.stderr


def test_mypy_rejects_every_write_on_the_plan_path(tmp_path: Path) -> None:
    rc, out = mypy(tmp_path, "plan_path", PLAN_PATH)
    assert rc == 1, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    for attr in ("update", "restart", "reload", "create_workspace", "delete_rule_group", "start"):
        assert any(f'has no attribute "{attr}"' in e for e in errors), (attr, out)
    assert len(errors) == 7, out


def test_the_same_writes_type_check_through_writers(tmp_path: Path) -> None:
    rc, out = mypy(tmp_path, "apply_path", APPLY_PATH)
    assert rc == 0, out


def test_only_apply_takes_writers() -> None:
    for step in ("observe", "plan", "report"):
        params = inspect.signature(getattr(Side, step)).parameters
        assert "writers" not in params, step
    assert "writers" in inspect.signature(Side.apply).parameters
    assert set(Writers.__dataclass_fields__) == {"store", "aws", "processes", "files"}
