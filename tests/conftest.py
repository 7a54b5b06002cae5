"""Shared fixtures. Harness fixtures live in tests/harness/fixtures_*.py."""

from __future__ import annotations

import importlib.util

pytest_plugins = [
    name
    for name in (
        "tests.harness.fixtures_aws",
        "tests.harness.fixtures_dataplane",
        "tests.harness.fixtures_local",
        "tests.harness.fixtures_systemd",
    )
    if importlib.util.find_spec(name) is not None
]
