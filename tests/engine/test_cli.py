"""The command line contract (DESIGN §3): ``ampd validate`` and ``ampd status`` exit codes
and output, and never a Python traceback for bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from ampd.cli import main
from ampd.core import Health, Kind, Plan, ResourceKey, ResourceStatus, SyncStatus
from ampd.engine.status import PassSummary, status_document

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "config/state.example.yml"
AMPD = [sys.executable, "-m", "ampd"]
PROBLEM_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<rest>.+)$")

THREE_MISTAKES = """\
version: 1
stack: prod
aws:
  regoin: eu-west-1
prometheus:
  scrape_interval: 15 seconds
  remote_write: null
  scrape_configs:
    - job: app
      targets: ["127.0.0.1:8080"]
      interval: 0s
"""


@pytest.fixture(autouse=True)
def keep_logging_config() -> Iterator[None]:
    """main() configures structlog for the process; put back what the session had."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AMPD_STATE", "NOTIFY_SOCKET")}
    return subprocess.run(
        [*AMPD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


# ---------------------------------------------------------------------------------------
# ampd validate


def test_validate_example_exits_0() -> None:
    res = run("validate", EXAMPLE)
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{EXAMPLE}: valid\n"
    assert "Traceback" not in res.stderr


def test_validate_three_mistakes(tmp_path: Path) -> None:
    state = tmp_path / "state.yml"
    state.write_text(THREE_MISTAKES)
    res = run("validate", str(state))
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr.splitlines() == [
        f"{state}:4:3: aws.regoin: unknown key 'regoin'; did you mean 'region'?",
        f"{state}:6:20: prometheus.scrape_interval: '15 seconds' is not a valid "
        r"scrape_interval: string should match pattern '^\d+(ms|s|m|h|d)$'",
        f"{state}:11:17: prometheus.scrape_configs[0].interval: '0s' must be longer than zero",
    ]


def test_validate_reads_state_option_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yml"
    good.write_text("version: 1\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 2\n")
    monkeypatch.setenv("AMPD_STATE", str(bad))
    assert main(["validate"]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}:1:10: version: ")
    assert main(["--state", str(good), "validate"]) == 0
    assert capsys.readouterr().out == f"{good}: valid\n"
    assert main(["validate", str(good)]) == 0  # an explicit FILE wins over AMPD_STATE


def test_validate_no_promtool_skips_rule_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yml").write_text("groups:\n  - name: g\n    rules:\n      - record: x\n")
    state = tmp_path / "state.yml"
    state.write_text(
        "version: 1\nworkspace:\n  alias: w\n  rule_groups: [{name: g, file: rules.yml}]\n"
    )
    assert main(["validate", str(state)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"{state}:4:33: workspace.rule_groups[0].file: promtool check rules failed"
    )
    assert main(["validate", "--no-promtool", str(state)]) == 0


def _write(data: bytes) -> Callable[[Path], Path]:
    def go(tmp: Path) -> Path:
        path = tmp / "state.yml"
        path.write_bytes(data)
        return path

    return go


GARBAGE: list[tuple[str, Callable[[Path], Path], str]] = [
    ("binary", _write(bytes(range(256)) * 4), "1:1: not UTF-8 text"),
    ("binary-utf8-controls", _write(b"version: 1\nstack: \x01\x02\n"), "2:8: YAML syntax"),
    ("empty", _write(b""), "1:1: the file is empty"),
    ("list", _write(b"- version: 1\n- stack: prod\n"), "1:1: the top level must be a mapping"),
    ("scalar", _write(b"prod\n"), "1:1: the top level must be a mapping"),
    (
        "deeply-wrong-types",
        _write(
            b"version: [1]\nstack: {a: b}\naws: 7\nworkspace: [alias]\n"
            b"prometheus: {scrape_configs: {job: a}, listen: [1, 2], enabled: {x: y}}\n"
            b"grafana: {datasource: [], dashboards: {a: 1}}\nmetrics: null\nruntime: [[[]]]\n"
        ),
        "1:10: version: ",
    ),
    ("nested-too-deep", _write(b"version: 1\nstack: " + b"[" * 600 + b"]" * 600), "1:1: YAML"),
    ("unclosed", _write(b"version: 1\naws: {region: eu-west-1\n"), "3:1: YAML syntax"),
    ("tab", _write(b"version: 1\naws:\n\tregion: auto\n"), "3:1: YAML syntax"),
    ("missing-file", lambda tmp: tmp / "nope.yml", "1:1: no such file"),
    ("directory", lambda tmp: tmp, "1:1: is a directory"),
]


@pytest.mark.parametrize(("make", "first"), [pytest.param(g[1], g[2], id=g[0]) for g in GARBAGE])
def test_validate_garbage_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], first: str
) -> None:
    path = make(tmp_path)
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines, "a reason is printed"
    assert lines[0].startswith(f"{path}:{first}"), lines[0]
    for line in lines:
        m = PROBLEM_LINE.match(line)
        assert m is not None, line
        assert m.group("file") == str(path)


@pytest.mark.parametrize(
    "name", ["binary", "deeply-wrong-types", "nested-too-deep", "directory", "missing-file"]
)
def test_validate_garbage_no_traceback(tmp_path: Path, name: str) -> None:
    make = next(g[1] for g in GARBAGE if g[0] == name)
    res = run("validate", str(make(tmp_path)))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert all(PROBLEM_LINE.match(line) for line in res.stderr.splitlines()), res.stderr


def test_deeply_wrong_types_lists_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = next(g[1] for g in GARBAGE if g[0] == "deeply-wrong-types")(tmp_path)
    assert main(["validate", str(path)]) == 1
    paths = [line.split(": ")[1] for line in capsys.readouterr().err.splitlines()]
    assert paths == [
        "version",
        "stack",
        "aws",
        "workspace",
        "prometheus.scrape_configs",
        "prometheus.listen",
        "prometheus.enabled",
        "grafana.datasource",
        "grafana.dashboards",
        "metrics",
        "runtime",
    ]


# ---------------------------------------------------------------------------------------
# ampd status


def write_status(
    runtime: Path, statuses: list[ResourceStatus], *, pid: int | None = None, **extra: Any
) -> dict[str, Any]:
    summary = PassSummary(
        reconcile_id="r-7",
        started_at=1_700_000_000.0,
        duration_s=0.05,
        plan=Plan(),
        outcomes=(),
        statuses=statuses,
        conditions={},
        spec_file="/etc/ampd/state.yml",
        spec_generation=1,
        spec_sha256=None,
        spec_error=None,
        workspace={"id": "ws-1", "region": "eu-west-1"},
        targets=2,
        next_pass_at=None,
        runtime="supervisor",
    )
    doc = status_document(summary, pid=os.getpid() if pid is None else pid, now=1_700_000_001.0)
    doc.update(extra)
    (runtime / "status.json").write_text(json.dumps(doc))
    return doc


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    return tmp_path


KEY = ResourceKey(Kind.PROCESS, "prometheus")


@pytest.mark.parametrize(
    ("sync", "health", "code"),
    [
        pytest.param(SyncStatus.SYNCED, Health.HEALTHY, 0, id="synced-healthy"),
        pytest.param(SyncStatus.OUT_OF_SYNC, Health.HEALTHY, 2, id="drift"),
        pytest.param(SyncStatus.SYNCED, Health.PROGRESSING, 2, id="progressing"),
        pytest.param(SyncStatus.SYNCED, Health.DEGRADED, 3, id="degraded"),
        pytest.param(SyncStatus.OUT_OF_SYNC, Health.MISSING, 3, id="missing"),
    ],
)
def test_status_exit_codes(
    runtime_dir: Path,
    capsys: pytest.CaptureFixture[str],
    sync: SyncStatus,
    health: Health,
    code: int,
) -> None:
    write_status(runtime_dir, [ResourceStatus(KEY, sync, health, "msg")])
    assert main(["status"]) == code
    out = capsys.readouterr().out
    assert out.startswith(f"ampd: {sync.value} · {health.value}   (")
    assert "process" in out
    assert "prometheus" in out


def test_status_json_round_trips(runtime_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = write_status(runtime_dir, [ResourceStatus(KEY, SyncStatus.SYNCED, Health.HEALTHY)])
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == doc


def test_status_not_running_without_status_file(
    runtime_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 1
    assert capsys.readouterr().err == f"ampd is not running (no {runtime_dir}/status.json)\n"


def test_status_stale_pid(runtime_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    write_status(runtime_dir, [], pid=pid_max + 1)  # no process can have it
    assert main(["status", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"pid {pid_max + 1}" in captured.err


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param("[]", id="a-list"),
        pytest.param('{"schema": "ampd.status/v0", "pid": 1}', id="other-schema"),
        pytest.param(json.dumps({"schema": "ampd.status/v1", "pid": "me"}), id="pid-string"),
        pytest.param(json.dumps({"schema": "ampd.status/v1"}), id="no-pid"),
    ],
)
def test_status_unusable_file(
    runtime_dir: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    (runtime_dir / "status.json").write_text(content)
    assert main(["status"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(runtime_dir / "status.json") in captured.err


def test_status_via_the_real_command(runtime_dir: Path) -> None:
    # The subprocess is a child of this test, so this test's pid is alive while it runs.
    doc = write_status(runtime_dir, [ResourceStatus(KEY, SyncStatus.OUT_OF_SYNC, Health.HEALTHY)])
    env = {**os.environ, "RUNTIME_DIRECTORY": str(runtime_dir)}
    res = subprocess.run(
        [*AMPD, "status", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert res.returncode == 2, res.stderr
    assert json.loads(res.stdout) == doc
