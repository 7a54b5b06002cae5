"""plan/local.py: tables of generated-file and process cases."""

from __future__ import annotations

import pytest

from ampd.core import Action, Change, Command, FieldDiff, Kind, ProcessState, ResourceKey
from ampd.local.plan.changes import (
    UNFINISHED,
    DesiredFile,
    file_key,
    plan_files,
    plan_processes,
    process_key,
    unrecorded_files,
)

A, B, C = "a" * 64, "b" * 64, "c" * 64
NAME = "prometheus.yml"
KEY = f"file/{NAME}"


# (id, desired sha or None, on disk, last applied, correct_drift,
#  expected changes [(action, reason)], expected drift [(action, reason)])
FILE_CASES = [
    ("in-sync", A, A, A, True, [], []),
    ("in-sync-first-run", A, A, None, True, [], []),
    ("create", A, None, None, True, [(Action.CREATE, "missing")], []),
    ("desired-change", B, A, A, True, [(Action.UPDATE, "desired content changed")], []),
    (
        "unknown-file-in-the-way",
        A,
        C,
        None,
        True,
        [(Action.UPDATE, "desired content changed")],
        [],
    ),
    (
        "hand-edit-corrected",
        A,
        C,
        A,
        True,
        [(Action.UPDATE, "edited by hand")],
        [(Action.UPDATE, "edited by hand")],
    ),
    ("hand-edit-reported-only", A, C, A, False, [], [(Action.UPDATE, "edited by hand")]),
    (
        "hand-edit-and-desired-change",
        B,
        C,
        A,
        True,
        [(Action.UPDATE, "edited by hand")],
        [(Action.UPDATE, "edited by hand")],
    ),
    (
        "deleted-by-hand-corrected",
        A,
        None,
        A,
        True,
        [(Action.CREATE, "deleted by hand")],
        [(Action.CREATE, "deleted by hand")],
    ),
    ("deleted-by-hand-reported-only", A, None, A, False, [], [(Action.CREATE, "deleted by hand")]),
    ("no-longer-generated", None, A, A, True, [(Action.DELETE, "no longer generated")], []),
    (
        "no-longer-generated-even-if-edited",
        None,
        C,
        A,
        False,
        [(Action.DELETE, "no longer generated")],
        [],
    ),
    ("no-longer-generated-already-gone", None, None, A, True, [], []),
    ("never-ours", None, A, None, True, [], []),
]


@pytest.mark.parametrize(
    ("want", "live", "last", "correct", "changes", "drift"),
    [pytest.param(*c[1:], id=c[0]) for c in FILE_CASES],
)
def test_plan_files(
    want: str | None,
    live: str | None,
    last: str | None,
    correct: bool,
    changes: list[tuple[Action, str]],
    drift: list[tuple[Action, str]],
) -> None:
    desired = [DesiredFile(NAME, want)] if want else []
    on_disk = {NAME: live} if live else {}
    applied = {KEY: last} if last else {}
    plan = plan_files(desired, on_disk, applied, correct_drift=correct)
    assert [(c.action, c.reason) for c in plan.changes] == changes
    assert [(c.action, c.reason) for c in plan.drift] == drift
    assert plan.skipped == ()
    for c in (*plan.changes, *plan.drift):
        assert c.key == ResourceKey(Kind.FILE, NAME)
        assert c.before == {"sha256": live}
        if c.action is Action.DELETE:
            assert c.after is None
        else:
            assert c.after == {"sha256": want}
            assert c.diffs == (FieldDiff("sha256", live, want),)
    assert plan.in_sync is (not changes and not drift)


def test_plan_files_several_and_foreign_keys() -> None:
    desired = [DesiredFile("prometheus.yml", A), DesiredFile("proxy.json", B)]
    on_disk = {"prometheus.yml": A, "proxy.json": None, "grafana/grafana.ini": C}
    applied = {
        "file/prometheus.yml": A,
        "file/grafana/grafana.ini": C,
        "aws.workspace/w": "x",  # other kinds in the applied record are not files
    }
    plan = plan_files(desired, on_disk, applied, correct_drift=True)
    assert [(str(c.key), c.action) for c in plan.changes] == [
        ("file/proxy.json", Action.CREATE),
        ("file/grafana/grafana.ini", Action.DELETE),
    ]


CMD = Command("prometheus", ("/usr/bin/prometheus", "--config.file=/x"))
NEW_CMD = Command("prometheus", ("/usr/bin/prometheus", "--config.file=/y"))
NOW = 1_000.0


def running(cmd: Command | None = CMD) -> ProcessState:
    return ProcessState("prometheus", running=True, pid=42, started_at=900.0, command=cmd)


def crashed(backoff_until: float | None) -> ProcessState:
    return ProcessState(
        "prometheus", running=False, last_exit=1, restarts=2, backoff_until=backoff_until
    )


def changed(*names: str) -> list[Change]:
    return [Change(file_key(n), Action.UPDATE) for n in names]


# (id, desired command or None, observed state or None, changed files,
#  expected (action, reason) or None, expected skipped reason fragment, expected wake)
PROCESS_CASES = [
    ("start", CMD, None, [], (Action.CREATE, "not running"), None, None),
    (
        "start-stopped",
        CMD,
        ProcessState("prometheus", running=False),
        [],
        (Action.CREATE, "not running"),
        None,
        None,
    ),
    ("leave-alone", CMD, running(), [], None, None, None),
    ("leave-alone-unrelated-file", CMD, running(), changed("proxy.json"), None, None, None),
    (
        "stop-when-disabled",
        None,
        running(),
        [],
        (Action.DELETE, "disabled in the state file"),
        None,
        None,
    ),
    ("disabled-and-stopped", None, crashed(None), [], None, None, None),
    (
        "restart-on-argv-change",
        NEW_CMD,
        running(),
        [],
        (Action.RESTART, "command changed"),
        None,
        None,
    ),
    (
        "argv-change-wins-over-reload",
        NEW_CMD,
        running(),
        changed("prometheus.yml"),
        (Action.RESTART, "command changed"),
        None,
        None,
    ),
    (
        "restart-on-settings-change",
        CMD,
        running(),
        changed("prometheus.cmd.json"),
        (Action.RESTART, "settings changed"),
        None,
        None,
    ),
    (
        "restart-wins-over-reload",
        CMD,
        running(),
        changed("prometheus.yml", "prometheus.cmd.json"),
        (Action.RESTART, "settings changed"),
        None,
        None,
    ),
    (
        "reload-on-config-change",
        CMD,
        running(),
        changed("prometheus.yml"),
        (Action.RELOAD, "configuration changed"),
        None,
        None,
    ),
    (
        "unknown-command-reloads",
        CMD,
        running(cmd=None),
        changed("prometheus.yml"),
        (Action.RELOAD, "configuration changed"),
        None,
        None,
    ),
    (
        "crashed-within-backoff",
        CMD,
        crashed(NOW + 7.5),
        [],
        None,
        "crashed (exit 1); restart after backoff of 7.5s",
        NOW + 7.5,
    ),
    (
        "crashed-after-backoff",
        CMD,
        crashed(NOW - 1),
        [],
        (Action.CREATE, "exited with 1; starting again"),
        None,
        None,
    ),
    (
        "crashed-backoff-ends-now",
        CMD,
        crashed(NOW),
        [],
        (Action.CREATE, "exited with 1; starting again"),
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("want", "state", "files", "expected", "skipped", "wake"),
    [pytest.param(*c[1:], id=c[0]) for c in PROCESS_CASES],
)
def test_plan_processes(
    want: Command | None,
    state: ProcessState | None,
    files: list[Change],
    expected: tuple[Action, str] | None,
    skipped: str | None,
    wake: float | None,
) -> None:
    desired = {"prometheus": want} if want else {}
    observed = {"prometheus": state} if state else {}
    plan, wake_at = plan_processes(desired, observed, files, now=NOW)
    assert [(c.action, c.reason) for c in plan.changes] == ([expected] if expected else [])
    for c in plan.changes:
        assert c.key == process_key("prometheus")
    assert [s.reason for s in plan.skipped] == ([skipped] if skipped else [])
    assert wake_at == wake
    assert plan.drift == ()


def test_argv_change_records_the_diff() -> None:
    plan, _ = plan_processes({"prometheus": NEW_CMD}, {"prometheus": running()}, [], now=NOW)
    [change] = plan.changes
    assert change.diffs == (FieldDiff("argv", list(CMD.argv), list(NEW_CMD.argv)),)
    assert change.before == {"argv": list(CMD.argv)}
    assert change.after == {"argv": list(NEW_CMD.argv)}


@pytest.mark.parametrize(
    ("name", "file", "action"),
    [
        ("sigv4-proxy", "proxy.json", Action.RESTART),
        ("sigv4-proxy", "sigv4-proxy.cmd.json", Action.RESTART),
        ("grafana", "grafana/grafana.ini", Action.RESTART),
        ("grafana", "grafana.cmd.json", Action.RESTART),
        ("grafana", "grafana/provisioning/datasources/ampd.yaml", Action.RELOAD),
        ("grafana", "grafana/provisioning/dashboards/ampd.yaml", Action.RELOAD),
    ],
)
def test_process_inputs(name: str, file: str, action: Action) -> None:
    cmd = Command(name, ("/bin/x",))
    state = ProcessState(name, running=True, command=cmd)
    plan, _ = plan_processes({name: cmd}, {name: state}, changed(file), now=NOW)
    assert [(str(c.key), c.action) for c in plan.changes] == [(f"process/{name}", action)]


def test_earliest_backoff_wakes_and_others_proceed() -> None:
    names = ["grafana", "prometheus", "sigv4-proxy"]
    desired = {n: Command(n, ("/bin/x",)) for n in names}
    observed = {
        "grafana": ProcessState("grafana", running=False, last_exit=-9, backoff_until=NOW + 30),
        "prometheus": ProcessState("prometheus", running=False, last_exit=2, backoff_until=NOW + 5),
        "sigv4-proxy": ProcessState("sigv4-proxy", running=True, command=desired["sigv4-proxy"]),
    }
    plan, wake = plan_processes(desired, observed, changed("proxy.json"), now=NOW)
    assert wake == NOW + 5
    assert [str(s.key) for s in plan.skipped] == ["process/grafana", "process/prometheus"]
    assert "exit -9" in plan.skipped[0].reason
    assert [(str(c.key), c.action) for c in plan.changes] == [
        ("process/sigv4-proxy", Action.RESTART)
    ]


# -- a pass that wrote files and was killed before it recorded them (kill -9) ---------------


def test_unrecorded_files_are_those_on_disk_as_desired_but_not_in_the_store() -> None:
    desired = [DesiredFile(NAME, B), DesiredFile("prometheus.cmd.json", A)]
    on_disk = {NAME: B, "prometheus.cmd.json": A}
    assert unrecorded_files(desired, on_disk, {KEY: A, "file/prometheus.cmd.json": A}) == (NAME,)
    assert unrecorded_files(desired, on_disk, {KEY: B, "file/prometheus.cmd.json": A}) == ()
    assert unrecorded_files(desired, {NAME: A}, {KEY: A}) == ()  # a change, not unrecorded
    # a store lost or rebuilt: everything that already matches is taken again once
    assert unrecorded_files(desired, on_disk, {}) == ("prometheus.cmd.json", NAME)


@pytest.mark.parametrize(
    ("file", "action"), [(NAME, Action.RELOAD), ("prometheus.cmd.json", Action.RESTART)]
)
def test_a_running_process_takes_inputs_an_unfinished_pass_wrote(file: str, action: Action) -> None:
    plan, _ = plan_processes(
        {"prometheus": CMD}, {"prometheus": running()}, [], now=NOW, unrecorded=[file]
    )
    assert [(c.action, c.reason) for c in plan.changes] == [(action, UNFINISHED)]
    # not running: started as always; a reason from this pass' own changes wins
    plan, _ = plan_processes({"prometheus": CMD}, {}, [], now=NOW, unrecorded=[file])
    assert [c.action for c in plan.changes] == [Action.CREATE]
    plan, _ = plan_processes(
        {"prometheus": CMD}, {"prometheus": running()}, changed(NAME), now=NOW, unrecorded=[file]
    )
    assert [c.reason for c in plan.changes] == ["configuration changed"]
