"""ampd's units and the systemd runtime against a real systemd 252 booted in a box.

See tests/harness/sysbox.py for how the box is made. Children run stand-in commands
(Prometheus is not in the box); the unit files, polkit rule, sandbox and runtime are real.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.harness.fixtures_systemd import (
    CHILD_UNITS,
    UNITS,
    WEDGE_FILE,
    drive,
    install_standin,
    prepare_state_dir,
    set_short_watchdog,
    unit_processes,
)
from tests.harness.sysbox import SysBox
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

# A long-running child: records every SIGHUP in $DATA/hups. Once its handler is in place
# (a SIGHUP before that would end it) it writes $DATA/ready-TAG and says hello on stderr.
CHILD = (
    "import os, signal, sys, time\n"
    "def hup(*_):\n"
    "    with open(os.environ['DATA'] + '/hups', 'a') as f: f.write('hup\\n')\n"
    "signal.signal(signal.SIGHUP, hup)\n"
    "open(os.environ['DATA'] + '/ready-' + sys.argv[1], 'w').close()\n"
    "print('child up', sys.argv[1], file=sys.stderr, flush=True)\n"
    "while True: time.sleep(1)\n"
)
PROM_DATA = "/var/lib/ampd/data/prometheus"


def child(tag: str, name: str = "prometheus") -> dict[str, Any]:
    return {
        "name": name,
        "argv": ["/usr/bin/python3", "-c", CHILD, tag],
        "env": {"DATA": PROM_DATA},
    }


def exposure(box: SysBox, unit: str) -> float:
    out = box.run("systemd-analyze", "security", "--no-pager", unit).check().stdout
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    assert match, out
    return float(match.group(1))


# -- unit files ------------------------------------------------------------------------------


def test_every_unit_passes_systemd_analyze_verify(ampd_box: SysBox) -> None:
    paths = [f"/usr/lib/systemd/system/{unit}" for unit in UNITS]
    done = ampd_box.run("systemd-analyze", "verify", *paths)
    assert done.returncode == 0, done.stderr
    assert not [ln for ln in done.stderr.splitlines() if "ampd" in ln], done.stderr


def test_security_exposure_is_low(ampd_box: SysBox) -> None:
    scores = {unit: exposure(ampd_box, unit) for unit in UNITS}
    print(f"systemd-analyze security: {scores}")
    # 1.2 ("OK") for each unit before the children had their own users, and no worse
    # since (a child's group ampd comes from /etc/group, not SupplementaryGroups=); the
    # proxy pays 0.1 for AF_NETLINK, its exact sock_diag lookup of each client's uid.
    limits = dict.fromkeys(UNITS, 1.2) | {"ampd-sigv4-proxy.service": 1.3}
    assert all(score <= limits[unit] for unit, score in scores.items()), scores


def test_polkit_lets_ampd_manage_its_child_units_and_nothing_else(ampd_box: SysBox) -> None:
    box = ampd_box
    prepare_state_dir(box)
    box.write_file(
        "/var/lib/ampd/generated/sigv4-proxy.cmd.json",
        '{"argv": ["/bin/sleep", "600"], "env": {}}',
    )
    for verb in ("start", "reload", "restart", "try-restart", "reset-failed"):
        done = box.run("systemctl", verb, "ampd-sigv4-proxy.service", user="ampd")
        assert done.returncode == 0, (verb, done.stderr)
    # set-property: the bus passes SetUnitProperties on (systemd 252's own policy), polkit allows it
    done = box.run(
        "systemctl",
        "set-property",
        "--runtime",
        "ampd-sigv4-proxy.service",
        "CPUWeight=10",
        user="ampd",
    )
    assert done.returncode == 0, done.stderr
    for verb, unit in (
        ("stop", "dbus.service"),
        ("restart", "ampd.service"),
        ("start", "systemd-journald.service"),
        ("kill", "ampd-sigv4-proxy.service"),
        ("set-property", "ampd.service"),  # its own unit: never
        ("set-property", "systemd-journald.service"),
        ("clean", "systemd-journald.service"),  # the bus lets ampd ask; polkit says no
    ):
        args = ["CPUWeight=10"] if verb == "set-property" else []
        done = box.run("systemctl", "--no-ask-password", verb, unit, *args, user="ampd")
        assert done.returncode != 0, (verb, unit)
        assert "authentication required" in done.stderr.lower(), done.stderr
    box.run("systemctl", "stop", "ampd-sigv4-proxy.service", user="ampd").check()


# -- the runtime -----------------------------------------------------------------------------


def test_runtime_starts_reloads_restarts_and_stops_a_child(ampd_box: SysBox) -> None:
    box = ampd_box
    prepare_state_dir(box)
    first, second = child("one"), child("two")
    out = drive(box, [("start", first), ("observe", "prometheus")])
    state = out[1]
    assert state["running"] and state["pid"], state
    assert state["command"]["argv"] == first["argv"], "cmd.json round-trips"
    assert state["command"]["env"] == first["env"]
    assert box.show("ampd-prometheus.service", "User")["User"] == "ampd-prometheus"

    # reload: SIGHUP reaches the process itself (ampd exec replaced itself with it)
    wait_for(lambda: box.path(f"{PROM_DATA}/ready-one").exists(), what="SIGHUP handler set")
    drive(box, [("reload", "prometheus")])
    wait_for(lambda: box.path(f"{PROM_DATA}/hups").exists(), what="SIGHUP recorded")
    again = drive(box, [("observe", "prometheus")])[0]
    assert again["pid"] == state["pid"]

    # start with the same command is a no-op; restart with a new one replaces the process
    out = drive(box, [("start", first), ("observe", "prometheus")])
    assert out[1]["pid"] == state["pid"]
    out = drive(box, [("restart", second), ("observe", "prometheus")])
    assert out[1]["running"] and out[1]["pid"] != state["pid"]
    assert out[1]["command"]["argv"][-1] == "two"

    out = drive(box, [("stop", "prometheus"), ("observe", "prometheus")])
    assert out[1]["running"] is False and out[1]["pid"] is None
    assert unit_processes(box, "ampd-prometheus.service") == []

    # reload of a stopped child is a TemporaryError, not a silent success
    out = drive(box, [("reload", "prometheus")])
    assert out[0]["error"] == "TemporaryError"


def test_runtime_reports_a_crash_looping_child_with_its_stderr(ampd_box: SysBox) -> None:
    box = ampd_box
    prepare_state_dir(box)
    crashing = {
        "name": "grafana",
        "argv": ["/bin/sh", "-c", "echo 'grafana: bad config' >&2; exit 3"],
        "env": {},
    }
    # The ampd user reads its children's journal lines only with the opt-in group.
    box.run("usermod", "--append", "--groups", "systemd-journal", "ampd").check()
    box.write_file(
        "/etc/systemd/system/ampd-grafana.service.d/fast.conf", "[Service]\nRestartSec=100ms\n"
    )
    box.run("systemctl", "daemon-reload").check()
    drive(box, [("start", crashing)])
    box.wait_for("ampd-grafana.service", timeout=30, ActiveState="failed")
    state = drive(box, [("observe", "grafana")])[0]
    assert state["running"] is False
    assert state["crash_looping"] is True
    assert state["last_exit"] == 3
    assert "grafana: bad config" in state["last_stderr"]

    # a fixed command starts despite the start limit (the runtime resets it first)
    fixed = {**child("fixed", "grafana"), "env": {"DATA": "/var/lib/ampd/data/grafana"}}
    out = drive(box, [("restart", fixed), ("observe", "grafana")], user="ampd")
    assert out[1]["running"] is True, out
    assert out[1]["crash_looping"] is False


def test_runtime_refuses_to_run_a_unit_it_does_not_own(ampd_box: SysBox) -> None:
    out = drive(ampd_box, [("observe", "dbus")])
    assert out[0]["error"] == "PermanentError"


# -- ampd.service semantics, with a stand-in daemon --------------------------------------------


def test_ampd_service_lifecycle_with_standin(ampd_box: SysBox) -> None:
    box = ampd_box
    install_standin(box, {"prometheus": child("p1")})
    box.run("systemctl", "start", "ampd.service", timeout=60).check()
    box.wait_for("ampd.service", ActiveState="active", SubState="running")
    box.wait_for("ampd.service", StatusText="Standin · 1 children · pass 1")
    status = box.run("systemctl", "status", "--no-pager", "ampd.service").stdout
    assert 'Status: "Standin · 1 children' in status, status
    box.wait_for("ampd-prometheus.service", ActiveState="active")

    # reload: the state file is re-read; a child comes, none goes
    sleeper = {"argv": ["/bin/sleep", "600"]}
    box.write_file(
        "/etc/ampd/standin.json", json.dumps({"prometheus": child("p1"), "sigv4-proxy": sleeper})
    )
    box.run("systemctl", "reload", "ampd.service").check()
    box.wait_for("ampd-sigv4-proxy.service", ActiveState="active")
    box.wait_for("ampd.service", StatusText="Standin · 2 children · pass 2")
    # ...and one goes
    box.write_file("/etc/ampd/standin.json", json.dumps({"sigv4-proxy": sleeper}))
    box.run("systemctl", "reload", "ampd.service").check()
    box.wait_for("ampd-prometheus.service", ActiveState="inactive")
    box.write_file(
        "/etc/ampd/standin.json", json.dumps({"prometheus": child("p1"), "sigv4-proxy": sleeper})
    )
    box.run("systemctl", "reload", "ampd.service").check()
    box.wait_for("ampd-prometheus.service", ActiveState="active")
    prom_pid = box.show("ampd-prometheus.service", "MainPID")["MainPID"]
    proxy_pid = box.show("ampd-sigv4-proxy.service", "MainPID")["MainPID"]

    # restarting ampd leaves healthy children alone
    main_pid = box.show("ampd.service", "MainPID")["MainPID"]
    box.run("systemctl", "restart", "ampd.service", timeout=60).check()
    box.wait_for("ampd.service", ActiveState="active", SubState="running")
    assert box.show("ampd.service", "MainPID")["MainPID"] != main_pid
    assert box.show("ampd-prometheus.service", "MainPID")["MainPID"] == prom_pid
    assert box.show("ampd-sigv4-proxy.service", "MainPID")["MainPID"] == proxy_pid

    # a wedged loop is killed by the watchdog and restarted; children survive that too
    box.write_file(WEDGE_FILE, "")
    box.wait_for("ampd.service", timeout=30, NRestarts="1")
    box.path(WEDGE_FILE).unlink()
    box.wait_for("ampd.service", ActiveState="active", SubState="running")
    assert "watchdog" in box.journal("ampd.service", lines=80).lower()
    assert box.show("ampd-prometheus.service", "MainPID")["MainPID"] == prom_pid, box.journal(
        lines=60
    )

    # stopping ampd leaves nothing behind
    box.run("systemctl", "stop", "ampd.service", timeout=60).check()
    for unit in ("ampd.service", *CHILD_UNITS):
        box.wait_for(unit, ActiveState="inactive")
        assert unit_processes(box, unit) == [], unit
    assert not box.path("/run/ampd").exists()
    assert box.path("/var/lib/ampd/generated/prometheus.cmd.json").exists()


# -- the real daemon ---------------------------------------------------------------------------


def _real_daemon_or_skip(box: SysBox) -> None:
    done = box.run("/usr/bin/ampd", "run", "--help")
    if done.returncode != 0:
        pytest.skip(f"`ampd run` is not available yet: {done.stderr.strip()[-200:]}")


def test_real_ampd_runs_reloads_and_is_restarted_by_the_watchdog(ampd_box: SysBox) -> None:
    box = ampd_box
    _real_daemon_or_skip(box)
    box.write_file("/etc/ampd/state.yml", "version: 1\nstack: boxtest\n", mode=0o640)
    box.run("chgrp", "ampd", "/etc/ampd/state.yml").check()
    set_short_watchdog(box)
    box.run("systemctl", "start", "ampd.service", timeout=90).check()
    box.wait_for("ampd.service", ActiveState="active", SubState="running")
    main_pid = box.show("ampd.service", "MainPID")["MainPID"]
    status = box.show("ampd.service", "StatusText")["StatusText"]
    assert status, box.journal("ampd.service")
    assert "Status:" in box.run("systemctl", "status", "--no-pager", "ampd.service").stdout

    box.run("systemctl", "reload", "ampd.service", timeout=60).check()
    box.wait_for("ampd.service", ActiveState="active", SubState="running")
    assert box.show("ampd.service", "MainPID")["MainPID"] == main_pid

    # wedged from outside: the system bus stops answering, so the next pass waits in a
    # `systemctl show` (bounded, but far beyond WatchdogSec=2s) and makes no progress
    bus = box.show("dbus.service", "MainPID")["MainPID"]
    box.run("kill", "-STOP", bus).check()
    try:
        box.run("systemctl", "kill", "--signal=HUP", "ampd.service").check()  # a pass now
        box.wait_for("ampd.service", timeout=30, Result="watchdog")
    finally:  # (the unit's ExecStopPost= asks the bus too)
        box.run("kill", "-CONT", bus).check()
    assert "watchdog.held" in box.journal("ampd.service", lines=80)
    box.wait_for("ampd.service", timeout=30, NRestarts="1")
    box.wait_for("ampd.service", timeout=30, ActiveState="active", SubState="running")

    box.run("systemctl", "stop", "ampd.service", timeout=60).check()
    box.wait_for("ampd.service", ActiveState="inactive")
    assert unit_processes(box, "ampd.service") == []
    assert not box.path("/run/ampd").exists()


def _journal_json(box: SysBox, *args: str) -> list[dict[str, Any]]:
    done = box.run("journalctl", "--no-pager", "-o", "json", *args).check()
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_real_ampd_logs_native_journal_entries_with_priorities(ampd_box: SysBox) -> None:
    box = ampd_box
    box.write_file("/etc/ampd/state.yml", "version: 1\nstack: [not, a, name]\n", mode=0o640)
    box.run("chgrp", "ampd", "/etc/ampd/state.yml").check()
    box.run("systemctl", "start", "ampd.service", timeout=90).check()
    box.wait_for("ampd.service", ActiveState="active", SubState="running")

    def entries(*match: str) -> list[dict[str, Any]]:
        return _journal_json(box, "-u", "ampd.service", *match)

    def invalid_logged() -> list[dict[str, Any]]:
        found = entries("-p", "warning")  # systemd's own warnings may come first
        return found if any(e.get("AMPD_EVENT") == "spec.invalid" for e in found) else []

    problems = wait_for(invalid_logged, 30, what="spec.invalid at priority err")
    invalid = [e for e in problems if e.get("AMPD_EVENT") == "spec.invalid"]
    assert invalid[0]["PRIORITY"] == "3"
    assert invalid[0]["MESSAGE"].startswith("spec.invalid")
    assert "/etc/ampd/state.yml:2:" in invalid[0]["AMPD_PROBLEMS"]
    # -p warning lists exactly the problems: nothing at info or debug
    assert all(int(e["PRIORITY"]) <= 4 for e in problems), problems
    summaries = wait_for(lambda: entries("AMPD_EVENT=reconcile.summary"), 30, what="a pass summary")
    assert summaries[0]["PRIORITY"] == "6"
    assert re.fullmatch(r"[0-9a-f]{12}", summaries[0]["RECONCILE_ID"])
    assert summaries[0]["SYSLOG_IDENTIFIER"] == "ampd"
    assert summaries[0]["AMPD_SPEC_VALID"] == "false"
    # `systemctl status` shows people a short line, not raw JSON
    shown = box.run("systemctl", "status", "--no-pager", "-n", "20", "ampd.service").stdout
    assert "reconcile.summary" in shown and '{"' not in shown, shown
    box.run("systemctl", "stop", "ampd.service", timeout=60).check()
