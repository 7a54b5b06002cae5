"""Inputs the fuzzing of `ampd validate` found breaking it, kept as regression tests: a FIFO,
a symlink loop, a 5,000-digit integer, !!omap, line breaks in values and file names, and
names too long for the file system. Each gets exit 1 and FILE:LINE:COL lines, never a
traceback or a hang."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

AMPD = str(Path(sys.executable).parent / "ampd")


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AMPD, "validate", "--no-promtool", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_contract(path: Path, res: subprocess.CompletedProcess[str]) -> None:
    assert res.returncode in (0, 1), res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    for line in res.stderr.splitlines():
        assert re.match(rf"^{re.escape(str(path))}:[1-9]\d*:[1-9]\d*: \S", line), line


def test_fifo_does_not_hang(tmp_path: Path) -> None:
    """A FIFO as state file is refused without being opened (a read would block)."""
    path = tmp_path / "state.yml"
    os.mkfifo(path)
    res = validate(path)  # a plain open() would block here forever
    assert_contract(path, res)
    assert res.returncode == 1


def test_symlink_loop_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """A symlink loop is a problem with a position, not a traceback."""
    path = tmp_path / "state.yml"
    other = tmp_path / "other.yml"
    other.symlink_to(path)
    path.symlink_to(other)
    res = validate(path)
    assert_contract(path, res)
    assert res.returncode == 1


def test_an_integer_longer_than_4300_digits(tmp_path: Path) -> None:
    """An integer Python will not parse (over 4,300 digits) is a problem, not a traceback."""
    path = tmp_path / "state.yml"
    path.write_text("version: 1\nworkspace:\n  retention_days: " + "9" * 5000 + "\n")
    res = validate(path)
    assert_contract(path, res)
    assert res.returncode == 1


def test_omap_tag(tmp_path: Path) -> None:
    """!!omap nodes carry no positions: the problem is still reported, at the closest one."""
    path = tmp_path / "state.yml"
    path.write_text("version: 1\nprometheus: !!omap [a: 1, b: 2]\n")
    res = validate(path)
    assert_contract(path, res)
    assert res.returncode == 1


@pytest.mark.parametrize(
    "text",
    [
        # a dashboard path with a line break: file_problems prints f"{d}: no such file ..."
        'version: 1\ngrafana:\n  dashboards: ["/x\\ny"]\n',
        # a duplicate key whose value holds a CR: ruamel's DuplicateKeyError text is echoed
        'version: 1\nprometheus:\n  external_labels:\n    a: "x\\ry"\n    a: "x\\ry"\n',
    ],
)
def test_values_with_line_breaks_keep_one_problem_per_line(tmp_path: Path, text: str) -> None:
    """A line break in a value or a file name is escaped: one problem, one line."""
    path = tmp_path / "state.yml"
    path.write_text(text)
    res = validate(path)
    assert_contract(path, res)
    assert res.returncode == 1


@pytest.mark.parametrize("field", ["alertmanager", "rule_groups", "dashboards"])
def test_a_referenced_file_name_too_long(tmp_path: Path, field: str) -> None:
    """A referenced file name too long for the file system is a problem, not a traceback."""
    name = "x" * 300
    body = {
        "alertmanager": f"workspace:\n  alias: a\n  alertmanager: {{file: {name}}}\n",
        "rule_groups": f"workspace:\n  alias: a\n  rule_groups: [{{name: n, file: {name}}}]\n",
        "dashboards": f"grafana:\n  dashboards: [{name}]\n",
    }[field]
    path = tmp_path / "state.yml"
    path.write_text("version: 1\n" + body)
    res = validate(path)
    assert_contract(path, res)
    assert res.returncode == 1


def test_a_nul_byte_in_a_referenced_file_name(tmp_path: Path) -> None:
    """A file name no file can have (a NUL byte) is a problem with a position."""
    path = tmp_path / "state.yml"
    path.write_text(
        'version: 1\nworkspace:\n  alias: a\n  rule_groups: [{name: n, file: "/tmp/a\\0b.yml"}]\n'
        'grafana: {dashboards: ["/tmp/d\\0.json"]}\n'
    )
    res = validate(path)
    assert_contract(path, res)
    assert res.returncode == 1
    assert "rule_groups" in res.stderr and "dashboards" in res.stderr
