"""``prometheus_bin``: a test that takes it runs once per Prometheus version found
(tests/harness/prombins.py), with ids ``prom2.42`` / ``prom2.53``. Loaded by
tests/conftest.py as a plugin.

Both supported Debian releases' Prometheus are first-class, so each one missing is a test
case of its own: under ``CI=true`` it fails, saying what is missing and that
``scripts/fetch-prometheus`` fetches it; elsewhere it is skipped with the same reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from tests.harness import prombins
from tests.harness.prombins import PromBin


@dataclass(frozen=True)
class Slot:
    id: str
    found: PromBin | None
    missing: str = ""  # why there is no binary for this slot
    expected: prombins.Version = (0, 0, 0)  # the version a missing one would have


def slots(found: tuple[PromBin, ...], host_release: str) -> list[Slot]:
    """One per binary found, and one per supported release none of them came from."""
    out = [Slot(b.id, b) for b in found]
    for release in prombins.missing_releases(found):
        major, minor = prombins.SUPPORTED[release]
        sid = f"prom{major}.{minor}"
        if any(s.id == sid for s in out):
            sid = f"{sid}-{release}"
        why = prombins.why_missing(release, found, host_release)
        out.append(Slot(sid, None, why, (major, minor, 0)))
    return sorted(out, key=lambda s: s.found.version if s.found else s.expected)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "prometheus_bin" in metafunc.fixturenames:
        found = slots(prombins.discover(), prombins.host_codename())
        metafunc.parametrize("prometheus_bin", found, ids=[s.id for s in found], indirect=True)


@pytest.fixture
def prometheus_bin(request: pytest.FixtureRequest) -> PromBin:
    """One of the supported Prometheus binaries (parametrized: see the module docstring)."""
    slot: Slot = request.param
    if slot.found is not None:
        return slot.found
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(slot.missing, pytrace=False)
    pytest.skip(slot.missing)
