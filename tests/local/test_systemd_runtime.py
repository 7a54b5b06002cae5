"""SystemdRuntime with a fake systemctl: parsing, error mapping, cmd.json handling.

The same runtime against a real systemd is tested in tests/system/test_systemd_box.py.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ampd.errors import PermanentError, TemporaryError
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Command
from ampd.gateways.systemd import Completed, SystemdRuntime, running_under_systemd
from ampd.gateways.users import PROCESS_USERS

UNITS = Path(__file__).resolve().parents[2] / "units"


class FakeSystemd:
    """Answers ``systemctl show`` from ``props``; records every other call."""

    def __init__(self, **props: str) -> None:
        self.props = {"LoadState": "loaded", "ActiveState": "inactive", **props}
        self.calls: list[tuple[str, ...]] = []
        self.fail: dict[str, Completed] = {}
        self.journal = Completed(0, "", "")

    def __call__(self, argv: Sequence[str], timeout: float) -> Completed:
        if argv[0] == "journalctl":
            return self.journal
        verb = argv[3]
        if verb == "show":
            return Completed(0, "".join(f"{k}={v}\n" for k, v in self.props.items()), "")
        self.calls.append(tuple(argv[3:]))
        return self.fail.get(verb, Completed(0, "", ""))


def running(pid: int = 42, started: float | None = None, restarts: int = 0) -> dict[str, str]:
    mono = (time.monotonic() - (time.time() - (started or time.time()))) * 1_000_000
    return {
        "ActiveState": "active",
        "SubState": "running",
        "MainPID": str(pid),
        "NRestarts": str(restarts),
        "ExecMainCode": "0",
        "ExecMainStatus": "0",
        "ExecMainStartTimestampMonotonic": str(int(mono)),
        "Result": "success",
    }


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "state", tmp_path / "run")


PROM = Command("prometheus", ("/usr/bin/prometheus", "--config.file=x"), {"A": "1"})


def write_cmd(paths: Paths, command: Command) -> Path:
    """What the local side writes before it starts a process (the one writer)."""
    path = paths.generated / f"{command.name}.cmd.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"argv": list(command.argv), "env": dict(command.env)}
    path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return path


def test_start_starts_the_unit_and_never_writes_the_command(paths: Paths) -> None:
    fake = FakeSystemd()
    SystemdRuntime(paths, run=fake).start(PROM)
    assert not (paths.generated / "prometheus.cmd.json").exists()
    assert fake.calls == [("start", "ampd-prometheus.service")]


def test_start_of_a_failed_unit_resets_it_first(paths: Paths) -> None:
    fake = FakeSystemd(ActiveState="failed", Result="start-limit-hit")
    SystemdRuntime(paths, run=fake).restart(PROM)
    assert fake.calls == [
        ("reset-failed", "ampd-prometheus.service"),
        ("restart", "ampd-prometheus.service"),
    ]


def test_observe_running_unit_reports_the_command_it_was_started_with(paths: Paths) -> None:
    fake = FakeSystemd()
    runtime = SystemdRuntime(paths, run=fake)
    write_cmd(paths, PROM)
    runtime.start(PROM)
    fake.props.update(running(started=time.time() + 0.5))
    state = runtime.observe("prometheus")
    assert state.running and state.pid == 42
    assert state.command == PROM
    assert state.last_stderr == ()  # healthy: the journal is not read


def test_a_command_written_after_the_process_started_is_not_reported(paths: Paths) -> None:
    # cmd.json rewritten, ampd died before the restart: the process runs something else.
    fake = FakeSystemd(**running(started=time.time() - 60))
    runtime = SystemdRuntime(paths, run=fake)
    write_cmd(paths, PROM)
    runtime.start(PROM)
    assert runtime.observe("prometheus").command is None


def test_rewriting_the_same_command_keeps_it_current(paths: Paths) -> None:
    fake = FakeSystemd()
    runtime = SystemdRuntime(paths, run=fake)
    cmd = write_cmd(paths, PROM)
    runtime.start(PROM)
    os.utime(cmd, (time.time() - 60, time.time() - 60))
    fake.props.update(running(started=time.time() - 30))
    runtime.restart(PROM)  # same bytes: the file is not touched
    assert runtime.observe("prometheus").command == PROM


@pytest.mark.parametrize(
    ("props", "crash_looping", "last_exit"),
    [
        ({"ActiveState": "failed", "Result": "start-limit-hit"}, True, None),
        (
            {"ActiveState": "failed", "NRestarts": "5", "ExecMainCode": "1", "ExecMainStatus": "3"},
            True,
            3,
        ),
        (
            {"ActiveState": "activating", "SubState": "auto-restart", "NRestarts": "1"},
            False,
            None,
        ),
        ({"ActiveState": "failed", "ExecMainCode": "2", "ExecMainStatus": "9"}, False, -9),
    ],
)
def test_observe_classifies_a_dead_unit(
    paths: Paths, props: dict[str, str], crash_looping: bool, last_exit: int | None
) -> None:
    fake = FakeSystemd(**props)
    fake.journal = Completed(0, "level=error msg=boom\n\n", "")
    state = SystemdRuntime(paths, run=fake).observe("prometheus")
    assert state.running is False and state.pid is None
    assert state.crash_looping is crash_looping
    assert state.last_exit == last_exit
    assert state.last_stderr == ("level=error msg=boom",)


def test_restarted_but_now_running_is_not_crash_looping(paths: Paths) -> None:
    state = SystemdRuntime(paths, run=FakeSystemd(**running(restarts=4))).observe("prometheus")
    assert state.running and not state.crash_looping and state.restarts == 4


def test_observe_a_unit_that_is_not_installed(paths: Paths) -> None:
    state = SystemdRuntime(paths, run=FakeSystemd(LoadState="not-found")).observe("grafana")
    assert state.running is False and state.command is None


@pytest.mark.parametrize(
    ("stderr", "error"),
    [
        (
            "Failed to start ampd-grafana.service: Unit ampd-grafana.service not found.",
            PermanentError,
        ),
        (
            "Failed to start ampd-grafana.service: Interactive authentication required.",
            PermanentError,
        ),
        ("Failed to start ampd-grafana.service: Access denied", PermanentError),
        ("Job for ampd-grafana.service failed because the control process exited", TemporaryError),
        ("Failed to connect to bus: No such file or directory", TemporaryError),
    ],
)
def test_systemctl_failures_map_to_the_error_tree(
    paths: Paths, stderr: str, error: type[Exception]
) -> None:
    fake = FakeSystemd()
    fake.fail["start"] = Completed(1, "", stderr)
    with pytest.raises(error):
        SystemdRuntime(paths, run=fake).start(Command("grafana", ("/usr/sbin/grafana-server",)))


def test_reload_of_a_stopped_unit_is_temporary(paths: Paths) -> None:
    fake = FakeSystemd()
    with pytest.raises(TemporaryError):
        SystemdRuntime(paths, run=fake).reload("prometheus")
    assert fake.calls == []
    fake.props.update(running())
    SystemdRuntime(paths, run=fake).reload("prometheus")
    assert fake.calls == [("reload", "ampd-prometheus.service")]


def test_only_its_own_processes(paths: Paths) -> None:
    with pytest.raises(PermanentError):
        SystemdRuntime(paths, run=FakeSystemd()).stop("dbus")


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_forget_data_stops_the_unit_then_cleans_its_state(paths: Paths, name: str) -> None:
    fake = FakeSystemd(**running(), CleanResult="success")
    SystemdRuntime(paths, run=fake).forget_data(name)
    unit = f"ampd-{name}.service"
    assert fake.calls == [("stop", unit), ("clean", unit, "--what=state")]


def test_forget_data_resets_a_failed_unit_first(paths: Paths) -> None:
    """systemd cleans only a stopped unit that has not failed (a crash, a failed clean)."""
    fake = FakeSystemd(ActiveState="failed", Result="exit-code", CleanResult="success")
    SystemdRuntime(paths, run=fake).forget_data("prometheus")
    unit = "ampd-prometheus.service"
    assert fake.calls == [("stop", unit), ("reset-failed", unit), ("clean", unit, "--what=state")]


def test_forget_data_reads_the_clean_result_systemctl_does_not_report(paths: Paths) -> None:
    """systemctl clean exits 0 when the removal failed (systemd 252): CleanResult tells."""
    fake = FakeSystemd(CleanResult="exit-code")
    fake.journal = Completed(0, "Failed to remove '/var/lib/ampd/data/prometheus': Busy\n", "")
    with pytest.raises(TemporaryError) as raised:
        SystemdRuntime(paths, run=fake).forget_data("prometheus")
    assert "CleanResult=exit-code" in str(raised.value)
    assert "Failed to remove '/var/lib/ampd/data/prometheus'" in str(raised.value)


@pytest.mark.parametrize(
    ("failing", "stderr", "error", "calls"),
    [
        ("stop", "Job for ampd-prometheus.service timed out.", TemporaryError, 1),
        (
            "clean",
            "Failed to clean ampd-prometheus.service: Interactive authentication required.",
            PermanentError,
            2,
        ),
        (
            "clean",
            "Failed to clean unit ampd-prometheus.service: Unit is not inactive or has "
            "pending job.",
            TemporaryError,
            2,
        ),
    ],
)
def test_forget_data_that_fails_raises(
    paths: Paths, failing: str, stderr: str, error: type[Exception], calls: int
) -> None:
    """Never a silent keep: a stop that failed cleans nothing, a clean that failed raises."""
    fake = FakeSystemd(**running(), CleanResult="success")
    fake.fail[failing] = Completed(1, "", stderr)
    with pytest.raises(error):
        SystemdRuntime(paths, run=fake).forget_data("prometheus")
    assert len(fake.calls) == calls
    assert fake.calls[0] == ("stop", "ampd-prometheus.service")


def test_the_polkit_grant_includes_clean_for_the_child_units() -> None:
    rules = (UNITS / "50-ampd.rules").read_text()
    verbs = re.search(r"var verbs = \[([^\]]*)\]", rules)
    assert verbs is not None and '"clean"' in verbs.group(1)
    assert '"set-property"' in verbs.group(1)  # IPAddressDeny=: the IMDS fence


def test_shutdown_leaves_every_unit_alone(paths: Paths) -> None:
    fake = FakeSystemd(**running())
    SystemdRuntime(paths, run=fake).shutdown()
    assert fake.calls == []


@pytest.mark.parametrize(
    ("env", "booted", "expected"),
    [
        ({"INVOCATION_ID": "abc"}, True, True),
        ({"NOTIFY_SOCKET": "/run/systemd/notify"}, True, True),
        ({}, True, False),  # typed into a shell on a systemd host
        ({"NOTIFY_SOCKET": "/run/notify"}, False, False),  # a container manager, not systemd
    ],
)
def test_running_under_systemd(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], booted: bool, expected: bool
) -> None:
    monkeypatch.setattr(Path, "is_dir", lambda self: booted and str(self) == "/run/systemd/system")
    assert running_under_systemd(env) is expected


# -- the unit files themselves ----------------------------------------------------------------


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize("name", ["prometheus", "sigv4-proxy", "grafana"])
def test_child_units_survive_an_ampd_restart(name: str) -> None:
    child = unit(f"ampd-{name}.service")
    for key in ("PartOf", "BindsTo", "StopPropagatedFrom", "Requires", "Requisite"):
        assert not child.has_option("Unit", key), key
    assert child.get("Service", "ExecStart") == f"/usr/bin/ampd exec {name}"
    assert child.get("Service", "CapabilityBoundingSet") == ""
    assert f"ampd-{name}.service" in (UNITS / "ampd.service").read_text()
    assert f'"ampd-{name}.service"' in (UNITS / "50-ampd.rules").read_text()


def _values(path: Path, key: str) -> list[str]:
    """Every value of ``key`` in a unit file (a key may repeat; configparser keeps one)."""
    out: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith(f"{key}="):
            out += line.split("=", 1)[1].split()
    return out


@pytest.mark.parametrize("name", ["prometheus", "sigv4-proxy", "grafana"])
def test_each_child_unit_runs_as_its_own_user_kept_from_ampd_s_files(name: str) -> None:
    child = unit(f"ampd-{name}.service")
    user = PROCESS_USERS[name]
    assert child.get("Service", "User") == user != "ampd"
    assert child.get("Service", "Group") == user
    sysusers = (UNITS / "ampd.sysusers").read_text().splitlines()
    assert any(line.split()[:2] == ["u", user] for line in sysusers), user
    # a member of group ampd (reads generated/) by /etc/group, so under both runtimes
    assert f"m {user} ampd" in sysusers
    hidden = set(_values(UNITS / f"ampd-{name}.service", "InaccessiblePaths"))
    assert {
        "-/var/lib/ampd/ampd.json",
        "-/var/lib/ampd/secrets",
        "-/var/lib/ampd/source",
        "-/etc/ampd/state.yml",
        "-/run/ampd",
    } <= hidden
    assert ("-/var/lib/ampd/grafana-secrets" in hidden) is (name != "grafana")
    if name in ("prometheus", "grafana"):
        assert child.get("Service", "MemoryMax")
        assert child.get("Service", "TasksMax")
        assert child.get("Service", "StateDirectoryMode") == "0750"


def test_only_the_daemon_user_has_the_polkit_grant() -> None:
    rules = (UNITS / "50-ampd.rules").read_text()
    assert re.findall(r'subject\.user\s*[!=]==\s*"([^"]*)"', rules) == ["ampd"]
    assert "subject.isInGroup" not in rules  # the children are in group ampd


def test_ampd_unit_contract() -> None:
    ampd = unit("ampd.service")
    service = dict(ampd.items("Service"))
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "ampd"
    assert service["RuntimeDirectory"] == "ampd"
    assert service["User"] == "ampd"
    assert service["ProtectSystem"] == "strict"
    assert service["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
