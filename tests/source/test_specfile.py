"""observe/specfile.py: the checks that touch the disk. Rule files go through the real
``promtool check rules`` (/usr/bin/promtool)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ampd.errors import Problem, SpecError
from ampd.source.specfile import (
    alertmanager_problem,
    file_problems,
    load_and_check,
    read_state_file,
)
from ampd.spec.load import load_spec

REPO = Path(__file__).resolve().parents[2]
GOOD_RULES = (REPO / "config/rules/node.yml").read_text()
BAD_RULES = "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum((up)\n"
ROUTE = "route:\n  receiver: default\nreceivers:\n  - name: default\n"
NOBODY = 65534

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")

STATE = """\
version: 1
workspace:
  alias: w
  rule_groups:
    - name: node
      file: rules/node.yml
  alertmanager:
    file: alertmanager.yml
grafana:
  datasource:
    auth: keys
    credentials_file: grafana-keys.ini
  dashboards:
    - dashboards
"""


@contextmanager
def as_nobody() -> Iterator[None]:
    """Root reads every file: check permissions as an unprivileged user instead."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def site() -> Iterator[Path]:
    """A state directory with every referenced file valid; cases break one thing each.

    Not under tmp_path: that lives in a 0700 directory an unprivileged user cannot enter.
    """
    root = Path(tempfile.mkdtemp(prefix="ampd-specfile-"))
    root.chmod(0o755)
    (root / "rules").mkdir()
    (root / "rules/node.yml").write_text(GOOD_RULES)
    (root / "alertmanager.yml").write_text(ROUTE)
    (root / "grafana-keys.ini").write_text("access_key_id = x\n")
    (root / "grafana-keys.ini").chmod(0o640)
    (root / "dashboards").mkdir()
    (root / "state.yml").write_text(STATE)
    yield root
    shutil.rmtree(root)


def check(root: Path, *, run_promtool: bool = True) -> list[Problem]:
    state = root / "state.yml"
    loaded = load_spec(state.read_text(), str(state))
    return file_problems(loaded, run_promtool=run_promtool)


def _write(rel: str, text: str, mode: int = 0o644) -> Callable[[Path], None]:
    def go(root: Path) -> None:
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        path.write_text(text)
        path.chmod(mode)

    return go


def _remove(rel: str) -> Callable[[Path], None]:
    def go(root: Path) -> None:
        path = root / rel
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    return go


def _make_dir(rel: str) -> Callable[[Path], None]:
    def go(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).mkdir()

    return go


def _chmod(rel: str, mode: int) -> Callable[[Path], None]:
    return lambda root: (root / rel).chmod(mode)


# (id, break one thing, (line, column, path), message fragment)
CASES = [
    (
        "rule-file-missing",
        _remove("rules/node.yml"),
        (6, 13, "workspace.rule_groups[0].file"),
        "rules/node.yml: no such file",
    ),
    (
        "rule-file-is-directory",
        _make_dir("rules/node.yml"),
        (6, 13, "workspace.rule_groups[0].file"),
        "rules/node.yml: not a regular file",
    ),
    (
        "rule-file-fails-promtool",
        _write("rules/node.yml", BAD_RULES),
        (6, 13, "workspace.rule_groups[0].file"),
        "promtool check rules failed: ",
    ),
    (
        "rule-file-not-yaml",
        _write("rules/node.yml", "groups: [\n"),
        (6, 13, "workspace.rule_groups[0].file"),
        "promtool check rules failed: ",
    ),
    (
        "alertmanager-missing",
        _remove("alertmanager.yml"),
        (8, 11, "workspace.alertmanager.file"),
        "alertmanager.yml: no such file",
    ),
    (
        "alertmanager-without-route",
        _write("alertmanager.yml", "receivers:\n  - name: default\n"),
        (8, 11, "workspace.alertmanager.file"),
        "an alert manager configuration needs a top-level route",
    ),
    (
        "alertmanager-config-without-route",
        _write("alertmanager.yml", "alertmanager_config: |\n  receivers: []\n"),
        (8, 11, "workspace.alertmanager.file"),
        "needs a top-level route",
    ),
    (
        "alertmanager-invalid-yaml",
        _write("alertmanager.yml", "route: [\n"),
        (8, 11, "workspace.alertmanager.file"),
        "not valid YAML",
    ),
    (
        "alertmanager-config-invalid-yaml",
        _write("alertmanager.yml", "alertmanager_config: |\n  route: {\n"),
        (8, 11, "workspace.alertmanager.file"),
        "alertmanager_config is not valid YAML",
    ),
    (
        "alertmanager-a-list",
        _write("alertmanager.yml", "- route\n"),
        (8, 11, "workspace.alertmanager.file"),
        "needs a top-level route",
    ),
    (
        "credentials-readable-by-others",
        _chmod("grafana-keys.ini", 0o644),
        (12, 23, "grafana.datasource.credentials_file"),
        "grafana-keys.ini is readable by others; chmod 0640 it",
    ),
    (
        "credentials-writable-by-others",
        _chmod("grafana-keys.ini", 0o602),
        (12, 23, "grafana.datasource.credentials_file"),
        "chmod 0640 it",
    ),
    (
        "credentials-missing",
        _remove("grafana-keys.ini"),
        (12, 23, "grafana.datasource.credentials_file"),
        "grafana-keys.ini: no such file",
    ),
    (
        "dashboards-missing",
        _remove("dashboards"),
        (14, 7, "grafana.dashboards[0]"),
        "dashboards: no such file or directory",
    ),
]


def test_all_good(site: Path) -> None:
    assert check(site) == []
    loaded = load_and_check(site / "state.yml")
    assert loaded.spec.workspace is not None
    assert loaded.spec.workspace.rule_groups[0].file == str(site / "rules/node.yml")


@needs_promtool
@pytest.mark.parametrize(
    ("breaks", "where", "message"), [pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES]
)
def test_one_broken_file(
    site: Path,
    breaks: Callable[[Path], None],
    where: tuple[int, int, str],
    message: str,
) -> None:
    breaks(site)
    found = check(site)
    assert [(p.line, p.column, p.path) for p in found] == [where], found
    assert message in found[0].message
    assert found[0].file == str(site / "state.yml")
    with pytest.raises(SpecError) as exc:
        load_and_check(site / "state.yml")
    assert exc.value.problems == found


@pytest.mark.parametrize(
    ("rel", "where"),
    [
        pytest.param("rules/node.yml", "workspace.rule_groups[0].file", id="rule-file"),
        pytest.param("alertmanager.yml", "workspace.alertmanager.file", id="alertmanager"),
        pytest.param("grafana-keys.ini", "grafana.datasource.credentials_file", id="credentials"),
    ],
)
def test_unreadable_file(site: Path, rel: str, where: str) -> None:
    if os.geteuid() == 0:  # everything else belongs to the unprivileged reader
        for path in site.rglob("*"):
            os.chown(path, NOBODY, NOBODY)
        os.chown(site / rel, 0, 0)
    (site / rel).chmod(0o600)
    state = site / "state.yml"
    loaded = load_spec(state.read_text(), str(state))
    with as_nobody():
        found = file_problems(loaded)
    assert [p.path for p in found] == [where]
    assert found[0].message == f"{site / rel}: permission denied"


def test_promtool_can_be_skipped(site: Path) -> None:
    (site / "rules/node.yml").write_text(BAD_RULES)
    assert check(site, run_promtool=False) == []


def test_every_problem_is_reported_in_file_order(site: Path) -> None:
    (site / "rules/node.yml").unlink()
    (site / "alertmanager.yml").write_text("{}\n")
    (site / "grafana-keys.ini").chmod(0o644)
    with pytest.raises(SpecError) as exc:
        load_and_check(site / "state.yml")
    assert [p.path for p in exc.value.problems] == [
        "workspace.rule_groups[0].file",
        "workspace.alertmanager.file",
        "grafana.datasource.credentials_file",
    ]


def test_relative_state_path_resolves_against_its_directory(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(site.parent)
    loaded = load_and_check(Path(site.name) / "state.yml")
    assert loaded.spec.workspace is not None
    assert loaded.spec.workspace.alertmanager is not None
    assert loaded.spec.workspace.alertmanager.file == f"{site.name}/alertmanager.yml"
    # From another working directory the references still resolve against the state
    # file's own directory, so the rule file is found and checked.
    monkeypatch.chdir(site / "rules")
    loaded = load_and_check(Path("../state.yml"))
    assert loaded.spec.workspace is not None
    assert loaded.spec.workspace.rule_groups[0].file == "../rules/node.yml"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: None, "no such file", id="missing"),
        pytest.param(lambda p: p.mkdir(), "is a directory", id="directory"),
        pytest.param(
            lambda p: p.write_bytes(b"version: 1\n\xff\xfe\x00"), "not UTF-8 text", id="binary"
        ),
    ],
)
def test_read_state_file_errors(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "state.yml"
    make(path)
    with pytest.raises(SpecError) as exc:
        read_state_file(path)
    assert str(exc.value).startswith(f"{path}:1:1: {message}")


def test_read_state_file_permission_denied(site: Path) -> None:
    state = site / "state.yml"
    state.chmod(0o600)
    with as_nobody(), pytest.raises(SpecError) as exc:
        read_state_file(state)
    assert str(exc.value) == f"{state}:1:1: permission denied"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(ROUTE, None, id="plain-route"),
        pytest.param(
            (REPO / "config/alertmanager.yml").read_text(), None, id="amp-alertmanager-config"
        ),
        pytest.param("", "needs a top-level route", id="empty"),
        pytest.param("receivers: []\n", "needs a top-level route", id="no-route"),
        pytest.param("route: [\n", "not valid YAML", id="bad-yaml"),
        pytest.param(
            "alertmanager_config: 'route: ['\n", "alertmanager_config is not valid YAML", id="bad"
        ),
    ],
)
def test_alertmanager_problem(text: str, problem: str | None) -> None:
    found = alertmanager_problem(text)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
