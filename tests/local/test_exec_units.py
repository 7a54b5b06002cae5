"""The units execute nothing from where others (or ampd's children) can write.

``NoExecPaths=`` on / and on each writable mount of the sandbox, ``ExecPaths=/usr /opt``
(units/*.service). The child unit runs a script from /usr/local/bin; the same child
cannot run a copy it writes to /tmp, /var/tmp, /dev/shm, /run/lock or its own data
directory, nor a root-owned one placed in ampd's state (which ``ampd exec`` refuses before
the kernel does). Against a real systemd booted in a box (tests/harness/sysbox.py).
"""

from __future__ import annotations

import pytest

from tests.harness.fixtures_systemd import UNITS, drive, prepare_state_dir
from tests.harness.sysbox import SysBox
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

DATA = "/var/lib/ampd/data/prometheus"
# leaves a mark in the unit's own data directory, named after itself, then stays up
SCRIPT = f'#!/bin/sh\necho ran > "{DATA}/ran-${{0##*/}}"\nexec sleep 600\n'
UNIT = "ampd-prometheus.service"
WRITABLE = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", DATA]


def test_every_unit_executes_only_from_root_s_system_trees(ampd_box: SysBox) -> None:
    for unit in UNITS:
        props = ampd_box.show(unit, "NoExecPaths", "ExecPaths")
        noexec = set(props["NoExecPaths"].split())
        assert {"/", "/dev", "/run", "/tmp", "/var/tmp", "/var/lib/ampd"} <= noexec, unit
        assert {"/usr", "/opt"} <= set(props["ExecPaths"].split()), (unit, props)


def start(box: SysBox, argv: list[str]) -> None:
    drive(box, [("start", {"name": "prometheus", "argv": argv, "env": {}})])


@pytest.fixture
def box(ampd_box: SysBox) -> SysBox:
    prepare_state_dir(ampd_box)
    ampd_box.write_file(f"/etc/systemd/system/{UNIT}.d/once.conf", "[Service]\nRestart=no\n")
    ampd_box.run("systemctl", "daemon-reload").check()
    ampd_box.run("install", "-d", "-o", "ampd", "-g", "ampd", DATA).check()
    ampd_box.write_file("/usr/local/bin/good", SCRIPT, mode=0o755)
    start(ampd_box, ["/usr/local/bin/good"])
    wait_for(
        lambda: ampd_box.path(f"{DATA}/ran-good").exists(),
        what="the script from /usr/local/bin ran",
        retry_on=(),
    )
    drive(ampd_box, [("stop", "prometheus")])
    ampd_box.wait_for(UNIT, timeout=30, ActiveState="inactive")
    return ampd_box


@pytest.mark.parametrize("where", WRITABLE)
def test_a_child_cannot_run_what_it_writes(box: SysBox, where: str) -> None:
    start(box, ["/bin/sh", "-c", f"cp /usr/local/bin/good {where}/evil && exec {where}/evil"])
    box.wait_for(UNIT, timeout=30, ActiveState="failed")
    log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", UNIT).stdout
    assert f"{where}/evil: Permission denied" in log, log
    assert not box.path(f"{DATA}/ran-evil").exists()


@pytest.mark.parametrize("where", ["/var/lib/ampd/evil", "/run/lock/evil"])
def test_a_child_cannot_exec_from_ampd_s_state_or_run_lock(box: SysBox, where: str) -> None:
    box.write_file(where, SCRIPT, mode=0o755)  # root's, even: the place decides
    # ampd exec refuses it first: a directory on its path is not root's alone ...
    start(box, [where])
    box.wait_for(UNIT, timeout=30, ActiveState="failed")
    log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", UNIT).stdout
    assert f"ampd exec prometheus: refusing to run {where}" in log, log
    # ... and the unit's sandbox refuses it as well, when a trusted shell is told to
    box.run("systemctl", "reset-failed", UNIT).check()
    box.wait_for(UNIT, timeout=30, ActiveState="inactive")
    start(box, ["/bin/sh", "-c", f"exec {where}"])
    box.wait_for(UNIT, timeout=30, ActiveState="failed")
    log = box.run("journalctl", "--no-pager", "-o", "cat", "-u", UNIT).stdout
    assert f"{where}: Permission denied" in log, log
    assert not box.path(f"{DATA}/ran-evil").exists()
