"""Shared fixtures. Harness fixtures live in tests/harness/fixtures_*.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

pytest_plugins = [
    "tests.harness.fixtures_aws",
    "tests.harness.fixtures_dataplane",
    "tests.harness.fixtures_local",
    "tests.harness.fixtures_systemd",
]


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Tests that run the CLI in process configure structlog globally; undo it."""
    yield
    structlog.reset_defaults()
