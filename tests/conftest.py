"""Shared fixtures and the skip policy. Harness fixtures live in tests/harness/fixtures_*.py.

Skip policy: under ``CI=true`` a skipped test (or module) fails the run, unless its node id
is listed with a reason in ``tests/skips-allowed.txt``. A skip that nobody sees is a test
that does not run; CI must say so loudly. Locally, skips stay skips (``-ra`` lists them).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

pytest_plugins = [
    "tests.harness.fixtures_aws",
    "tests.harness.fixtures_dataplane",
    "tests.harness.fixtures_local",
    "tests.harness.fixtures_prombin",
    "tests.harness.fixtures_systemd",
]

SKIPS_ALLOWED = Path(__file__).with_name("skips-allowed.txt")


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Tests that run the CLI in process configure structlog globally; undo it."""
    yield
    structlog.reset_defaults()


# -- skip policy ------------------------------------------------------------------------------


def parse_allowed(text: str) -> dict[str, str]:
    """``node-id reason...`` per line, ``#`` starts a comment line; a reason is required."""
    allowed: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        node, _, reason = line.partition(" ")
        if not reason.strip():
            raise pytest.UsageError(f"skips allow-list line {number}: {node} gives no reason")
        allowed[node] = reason.strip()
    return allowed


_ALLOWED = pytest.StashKey[dict[str, str]]()


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    path = Path(os.environ.get("AMPD_SKIPS_ALLOWED", SKIPS_ALLOWED))
    config.stash[_ALLOWED] = parse_allowed(path.read_text()) if path.is_file() else {}


def _allowed(config: pytest.Config, nodeid: str) -> bool:
    """Listed as is, or (a parametrized test) by its id without the ``[...]`` part."""
    allowed = config.stash[_ALLOWED]
    return nodeid in allowed or nodeid.split("[", 1)[0] in allowed


def _why(report: pytest.TestReport | pytest.CollectReport) -> str:
    if hasattr(report, "wasxfail"):
        return f"xfail: {report.wasxfail}"
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def _forbid(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.longrepr = (
        f"skipped under CI=true and not listed in tests/skips-allowed.txt ({_why(report)})"
    )
    report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if _ci() and report.skipped and not _allowed(item.config, item.nodeid):
        _forbid(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if _ci() and report.skipped and not _allowed(collector.config, report.nodeid):
        _forbid(report)
