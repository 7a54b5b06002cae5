"""No test installs a package on this machine (scripts/test installs everything first).

During scripts/test's pytest step ``apt-get``/``apt``/``aptitude`` are shims that fail
naming the calling test, ``dpkg`` refuses to install or remove, and ``AMPD_NO_APT=1``
makes scripts/build-deb fail rather than install a build dependency. Under CI=true the
shims must be in effect; the shims themselves are checked here in any case.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness.noapt import REFUSED, write_shims

REPO = Path(__file__).resolve().parents[2]
PIP_BUILD = re.compile(r'\bpip"?\s+(install|wheel)\b')


def test_under_ci_the_suite_runs_with_the_apt_shims_first_on_path() -> None:
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("scripts/test sets the shims up; this run did not come from it")
    assert os.environ.get("AMPD_NO_APT") == "1"
    for name in REFUSED:
        found = shutil.which(name)
        assert found is not None and Path(found).parent.name == "noapt", (name, found)


@pytest.mark.parametrize("name", REFUSED)
def test_an_apt_shim_fails_and_names_the_test(name: str, tmp_path: Path) -> None:
    shims = write_shims(tmp_path / "noapt")
    done = subprocess.run(
        [str(shims / name), "install", "-y", "hello"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{shims}:/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 100
    here = os.environ["PYTEST_CURRENT_TEST"].split(" ")[0]
    assert here in done.stderr, done.stderr
    assert "scripts/test installs" in done.stderr


def test_the_dpkg_shim_refuses_installs_and_passes_queries(tmp_path: Path) -> None:
    shims = write_shims(tmp_path / "noapt")
    refused = subprocess.run(
        [str(shims / "dpkg"), "-i", "/nonexistent.deb"], capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert "test_the_dpkg_shim_refuses_installs" in refused.stderr
    arch = subprocess.run(
        [str(shims / "dpkg"), "--print-architecture"], capture_output=True, text=True, check=True
    )
    real = subprocess.run(
        ["/usr/bin/dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    )
    assert arch.returncode == 0 and arch.stdout == real.stdout != ""


def test_build_deb_with_no_apt_fails_instead_of_installing(tmp_path: Path) -> None:
    """A build dependency that is not installed: build-deb names it and installs nothing."""
    tree = tmp_path / "src"
    shutil.copytree(REPO / "debian", tree / "debian")
    shutil.copytree(REPO / "scripts", tree / "scripts")
    control = tree / "debian/control"
    control.write_text(
        control.read_text().replace(
            "Build-Depends: ", "Build-Depends: ampd-no-such-build-dependency,\n               "
        )
    )
    done = subprocess.run(
        [str(tree / "scripts/build-deb"), "--deps-only"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AMPD_NO_APT": "1", "HOME": str(tmp_path)},
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "ampd-no-such-build-dependency" in done.stderr
    assert "AMPD_NO_APT=1 forbids" in done.stderr


def _logical_lines(text: str) -> list[str]:
    return text.replace("\\\n", " ").splitlines()


def test_every_pip_build_in_the_scripts_uses_pep517_or_only_wheels() -> None:
    """An sdist (sdnotify) built the legacy way fails on a venv without `wheel` (Debian 12's)
    and works where pip has a cached wheel: every pip that may build uses PEP 517, or
    installs offline from wheels only (--no-index)."""
    files = [*sorted((REPO / "scripts").iterdir()), REPO / "debian/rules"]
    checked = 0
    for path in files:
        for line in _logical_lines(path.read_text()):
            if line.lstrip().startswith("#"):
                continue
            if PIP_BUILD.search(line):
                checked += 1
                assert "--use-pep517" in line or "--no-index" in line or "PIP_OFFLINE" in line, (
                    f"{path.name}: {line.strip()}"
                )
    assert checked >= 3  # bootstrap, build-deb, debian/rules
