"""The skip policy of tests/conftest.py: under CI=true a skip fails the run unless the test
is in the allow-list with a reason; outside CI a skip stays a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import parse_allowed

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).parents[1] / "conftest.py"
POLICY = CONFTEST.read_text().split("# -- skip policy", 1)[1]
HEADER = (
    "import os\nfrom collections.abc import Generator, Iterator\nfrom pathlib import Path\n"
    "from typing import Any\nimport pytest\n"
    "SKIPS_ALLOWED = Path(__file__).with_name('skips-allowed.txt')\n"
)
TESTS = """
import pytest

def test_runs():
    assert True

@pytest.mark.skipif(True, reason="no such tool here")
def test_marked():
    pass

def test_skips_itself():
    pytest.skip("cannot do it here")

@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    pytest.skip(f"param {n}")
"""


# Each run is a separate process: an in-process run would also collect what earlier tests
# of this session left for the garbage collector (their unraisable-exception warnings).
@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with only the skip policy of the real conftest (none of its fixtures)."""
    pytester.makeconftest(HEADER + "# -- skip policy" + POLICY)
    pytester.makepyfile(test_things=TESTS)
    return pytester


def allow(pytester: pytest.Pytester, text: str) -> None:
    (pytester.path / "skips-allowed.txt").write_text(text)


def test_outside_ci_a_skip_is_a_skip(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=4)
    assert result.ret == 0


# scripts/test runs pytest with two xdist workers: the rule must hold there too
WORKERS = pytest.mark.parametrize(
    "workers", [[], ["-n", "2", "--dist", "loadfile"]], ids=["serial", "xdist"]
)


@WORKERS
def test_under_ci_every_unlisted_skip_fails(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    result = project.runpytest_subprocess("-p", "no:cacheprovider", *workers)
    # a skipif mark skips in setup: that shows as an error, the others as failures
    result.assert_outcomes(passed=1, failed=3, errors=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*test_skips_itself - skipped under CI=true*(Skipped: cannot do it here)*",
            "*test_marked - skipped under CI=true and not listed in tests/skips-allowed.txt*",
        ]
    )


def test_under_ci_a_listed_skip_stays_a_skip(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    allow(
        project,
        "# comment\n"
        "test_things.py::test_marked the tool is not packaged\n"
        "test_things.py::test_param[1] one case only\n",
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-rfs")
    result.assert_outcomes(passed=1, skipped=2, failed=2)
    result.stdout.fnmatch_lines(
        ["FAILED test_things.py::test_skips_itself*", "FAILED test_things.py::test_param[[]2[]]*"]
    )
    assert "FAILED test_things.py::test_param[1]" not in result.stdout.str()


def test_a_parametrized_test_is_allowed_as_a_whole(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    allow(project, "test_things.py::test_param every case needs the tool\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2, failed=1, errors=1)


@WORKERS
def test_under_ci_a_module_skipped_at_collection_fails(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    project.makepyfile(
        test_module="import pytest\npytest.skip('whole module', allow_module_level=True)\n"
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", *workers, "test_module.py")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*test_module.py*not listed in tests/skips-allowed.txt*"])


def test_an_entry_without_a_reason_is_refused() -> None:
    assert parse_allowed("# c\n\na::b  why not\n") == {"a::b": "why not"}
    with pytest.raises(pytest.UsageError, match="line 2: a::c gives no reason"):
        parse_allowed("a::b fine\na::c\n")


def test_the_allow_list_names_only_real_tests_with_reasons() -> None:
    allowed = parse_allowed(CONFTEST.with_name("skips-allowed.txt").read_text())
    assert list(allowed) == [
        "tests/local/test_grafana_daemon.py::test_real_grafana_loads_the_provisioning"
    ]
    for node in allowed:
        path, _, name = node.partition("::")
        assert f"def {name.split('[')[0]}(" in (CONFTEST.parents[1] / path).read_text()
