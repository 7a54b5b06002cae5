"""pytest fixtures for tests that boot a real systemd (see tests/harness/sysbox.py).

``sysbox``: a freshly booted box per test. ``ampd_box``: one with ampd's units, polkit
rule and system user installed the way the Debian package installs them. Tests skip with
the reason when this machine cannot boot a box (not root, no cgroup2, no debootstrap).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.sysbox import REPO, SysBox, ensure_rootfs, unavailable_reason

UNITS = (
    "ampd.service",
    "ampd-prometheus.service",
    "ampd-sigv4-proxy.service",
    "ampd-grafana.service",
)
CHILD_UNITS = UNITS[1:]


@pytest.fixture(scope="session")
def sysbox_rootfs() -> Path:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"cannot boot a systemd box here: {reason}")
    return ensure_rootfs()


@pytest.fixture
def sysbox(sysbox_rootfs: Path) -> Iterator[SysBox]:
    box = SysBox(sysbox_rootfs)
    box.boot()
    try:
        yield box
    finally:
        box.close()


def install_ampd(box: SysBox) -> None:
    """What the package does: units, sysusers, tmpfiles, polkit rule, bus policy; then
    daemon-reload."""
    units = REPO / "units"
    for unit in UNITS:
        box.write_file(f"/usr/lib/systemd/system/{unit}", (units / unit).read_bytes())
    box.write_file("/usr/lib/sysusers.d/ampd.conf", (units / "ampd.sysusers").read_bytes())
    box.write_file("/usr/lib/tmpfiles.d/ampd.conf", (units / "ampd.tmpfiles").read_bytes())
    box.write_file(
        "/usr/share/polkit-1/rules.d/50-ampd.rules", (units / "50-ampd.rules").read_bytes()
    )
    box.write_file("/usr/share/dbus-1/system.d/ampd.conf", (units / "ampd-dbus.conf").read_bytes())
    box.run("systemd-sysusers", "/usr/lib/sysusers.d/ampd.conf").check()
    box.run("systemd-tmpfiles", "--create", "/usr/lib/tmpfiles.d/ampd.conf").check()
    box.run("systemctl", "reload", "dbus.service").check()  # the bus policy (Debian: a trigger)
    box.run("systemctl", "daemon-reload").check()


@pytest.fixture
def ampd_box(sysbox: SysBox) -> SysBox:
    install_ampd(sysbox)
    return sysbox


VENV_PYTHON = "/opt/venvs/ampd/bin/python"


def drive(box: SysBox, ops: list[tuple[str, object]], user: str | None = "ampd") -> list[Any]:
    """Run SystemdRuntime operations inside the box (tests/harness/runtime_driver.py)."""
    done = box.run(
        VENV_PYTHON,
        "-m",
        "tests.harness.runtime_driver",
        user=user,
        input=json.dumps(ops),
        timeout=120,
    ).check()
    results: list[Any] = json.loads(done.stdout)
    return results


def prepare_state_dir(box: SysBox) -> None:
    """/var/lib/ampd as ampd.service's StateDirectory= leaves it, without starting ampd."""
    box.run("install", "-d", "-o", "ampd", "-g", "ampd", "-m", "0750", "/var/lib/ampd").check()


def install_standin(box: SysBox, desired: dict[str, Any], watchdog: str = "2s") -> None:
    """Replace ampd.service's ExecStart with tests/harness/standin_ampd.py (drop-in)."""
    box.write_file("/etc/ampd/standin.json", json.dumps(desired))
    box.write_file(
        "/etc/systemd/system/ampd.service.d/standin.conf",
        "[Service]\n"
        "ExecStart=\n"
        f"ExecStart={VENV_PYTHON} -m tests.harness.standin_ampd\n"
        f"WatchdogSec={watchdog}\n"
        "Environment=STANDIN_DESIRED=/etc/ampd/standin.json\n"
        f"Environment=AMPD_TEST_WEDGE_FILE={WEDGE_FILE}\n",
    )
    box.run("systemctl", "daemon-reload").check()


WEDGE_FILE = "/run/ampd-test/wedge"


def set_short_watchdog(box: SysBox) -> None:
    """Drop-in giving the real daemon a WatchdogSec= shorter than the bounded waits of
    its calls (the real daemon has no test hook: a test wedges it from outside)."""
    box.write_file(
        "/etc/systemd/system/ampd.service.d/test-watchdog.conf",
        "[Service]\nWatchdogSec=2s\n",
    )
    box.run("systemctl", "daemon-reload").check()


def unit_processes(box: SysBox, unit: str) -> list[str]:
    """PIDs still in the unit's cgroup (empty once it is truly gone)."""
    procs = box.path(f"/sys/fs/cgroup/system.slice/{unit}/cgroup.procs")
    try:
        return procs.read_text().split()
    except FileNotFoundError:
        return []
