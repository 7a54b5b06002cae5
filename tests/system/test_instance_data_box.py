"""A host started from an image it was not baked from drops the other instance's data,
under a real systemd (the box of tests/harness/sysbox.py: this machine's Debian release,
systemd 252 on Debian 12, 257 on Debian 13).

The children's data is their own users' (``ampd-prometheus``, ``ampd-grafana``; 0750) and
the daemon runs as ``ampd``: it cannot remove it itself. It stops each child unit and has
systemd remove the unit's StateDirectory= (``systemctl clean --what=state``, allowed by
units/50-ampd.rules). The real ``ampd.service`` runs here, its instance id from an IMDS
stand-in inside the box; ``ampd.json`` names another instance.

When systemd will not clean (the polkit grant without ``clean``), nothing is reported
dropped: the marker stays, ampd.json keeps the old instance id, ``InstanceDataDropped``
is False and the journal says what was kept.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness.fixtures_systemd import VENV_PYTHON, drive, prepare_state_dir
from tests.harness.sysbox import SysBox
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

OLD = "i-0ba4ed0000000000a1"
NEW = "i-0f4e5b0000000000b2"
IMDS_PORT = 9178
PROM_DATA = "/var/lib/ampd/data/prometheus"
GRAFANA_DATA = "/var/lib/ampd/data/grafana"
MARKERS = {
    f"{PROM_DATA}/wal-of-the-baking-host": "ampd-prometheus",
    f"{GRAFANA_DATA}/grafana.db": "ampd-grafana",
}
OTHER = "/var/lib/ampd/data/left-by-ampd"
STATUS = "/run/ampd/status.json"
IMDS = f"""
import threading
from tests.harness.imds import ImdsServer
ImdsServer(port={IMDS_PORT}, instance_id={NEW!r}, region="eu-west-1").start()
threading.Event().wait()
"""
STATE = """\
version: 1
stack: newhost
aws: {region: eu-west-1}
metrics: {enabled: false}
"""
# ampd.json as the image left it: another instance's id and its files' hashes.
MAKE_STORE = f"""
from pathlib import Path
from ampd.gateways.store import Store, StoredState
Store(Path("/var/lib/ampd/ampd.json")).save(
    StoredState(instance_id="{OLD}", applied={{"file/prometheus.yml": "abc"}})
)
"""


def stored_instance(box: SysBox) -> str | None:
    try:
        value: str | None = json.loads(box.read_file("/var/lib/ampd/ampd.json"))["instance_id"]
    except (OSError, ValueError, KeyError):
        return None
    return value


def condition(box: SysBox, kind: str) -> dict[str, Any] | None:
    try:
        status = json.loads(box.read_file(STATUS))
    except (OSError, ValueError):
        return None
    for cond in status.get("conditions", []):
        if cond.get("type") == kind:
            found: dict[str, Any] = cond
            return found
    return None


def image_with_another_instance(box: SysBox) -> None:
    """/var/lib/ampd as a host from another instance's image has it: ampd.json naming that
    instance, and the children's data, their users' own (as their units leave it)."""
    prepare_state_dir(box)
    box.run(VENV_PYTHON, "-c", MAKE_STORE, user="ampd").check()
    # data/ as an ampd that wrote there itself left it (systemd makes a missing one root's)
    box.run("install", "-d", "-o", "ampd", "-g", "ampd", "-m", "0750", "/var/lib/ampd/data").check()
    for path, user in MARKERS.items():
        directory = path.rsplit("/", 1)[0]
        box.run("install", "-d", "-o", user, "-g", user, "-m", "0750", directory).check()
        box.write_file(path, "samples labelled with the other instance's id", mode=0o640)
        box.run("chown", f"{user}:{user}", path).check()
    box.write_file(OTHER, "x", mode=0o600)
    box.run("chown", "ampd:ampd", OTHER).check()
    # the daemon's user cannot remove them itself: the reason for systemctl clean
    tried = box.run("rm", "-rf", PROM_DATA, user="ampd")
    assert tried.returncode != 0 and box.path(next(iter(MARKERS))).exists(), tried.stderr


def start_ampd(box: SysBox) -> None:
    box.write_file("/run/imds-standin.py", IMDS)
    box.run(
        "systemd-run", "--unit=imds-standin", "--property=WorkingDirectory=/opt/ampd-src",
        VENV_PYTHON, "/run/imds-standin.py",
    ).check()  # fmt: skip
    box.write_file(
        "/etc/default/ampd",
        f"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:{IMDS_PORT}/\n",
    )
    box.write_file("/etc/ampd/state.yml", STATE, mode=0o640)
    box.run("chgrp", "ampd", "/etc/ampd/state.yml").check()
    box.run("systemctl", "start", "ampd.service", timeout=90).check()


def why(box: SysBox) -> str:
    status = box.read_file(STATUS) if box.path(STATUS).exists() else "(no status.json)"
    return f"{status}\n{box.journal('ampd.service', lines=60)}\n{box.journal('imds-standin')}"


def systemd_version(box: SysBox) -> str:
    return box.run("systemctl", "--version").check().stdout.split()[1]


def test_a_new_instance_drops_the_children_s_data_through_systemd(ampd_box: SysBox) -> None:
    box = ampd_box
    image_with_another_instance(box)
    start_ampd(box)
    dropped = wait_for(
        lambda: condition(box, "InstanceDataDropped"),
        90,
        detail=lambda: why(box),
        what="InstanceDataDropped in status.json",
    )
    assert dropped["status"] == "True", f"{dropped['message']}\n{why(box)}"
    assert OLD in dropped["message"]
    assert stored_instance(box) == NEW
    for path in MARKERS:
        assert not box.path(path).exists(), path
    assert not box.path(OTHER).exists()
    stored = json.loads(box.read_file("/var/lib/ampd/ampd.json"))
    assert stored["applied"].get("file/prometheus.yml") != "abc"  # the image's hashes went
    journal = box.journal("ampd.service", lines=400)
    assert "instance.changed" in journal and "instance.data_kept" not in journal
    print(f"\nsystemd {systemd_version(box)}: the other instance's data removed by clean")


def test_without_the_clean_grant_the_data_is_kept_and_said_so(ampd_box: SysBox) -> None:
    box = ampd_box
    rules = box.read_file("/usr/share/polkit-1/rules.d/50-ampd.rules")
    without = rules.replace('"clean", ', "")
    assert without != rules and '"clean"' not in without
    box.write_file("/usr/share/polkit-1/rules.d/50-ampd.rules", without)
    box.run("systemctl", "restart", "polkit.service").check()
    image_with_another_instance(box)
    start_ampd(box)
    kept = wait_for(
        lambda: condition(box, "InstanceDataDropped"),
        90,
        detail=lambda: why(box),
        what="InstanceDataDropped in status.json",
    )
    assert kept["status"] == "False", (kept, why(box))
    assert "ampd-prometheus.service" in kept["message"] and "not allowed" in kept["message"]
    for path in MARKERS:
        assert box.path(path).exists(), path
    assert stored_instance(box) == OLD  # not recorded: the next pass tries again
    assert "instance.data_kept" in box.journal("ampd.service", lines=400)


def test_forget_data_as_the_ampd_user_stops_the_unit_and_cleans_it(ampd_box: SysBox) -> None:
    """SystemdRuntime.forget_data as ampd.service's user, on a running child that writes
    into its StateDirectory=."""
    box = ampd_box
    prepare_state_dir(box)
    writer = {
        "name": "prometheus",
        "argv": [
            "/bin/sh",
            "-c",
            f"echo samples > {PROM_DATA}/wal && exec sleep 600",
        ],
        "env": {},
    }
    drive(box, [("start", writer)])
    unit = "ampd-prometheus.service"
    box.wait_for(unit, ActiveState="active")
    wait_for(lambda: box.path(f"{PROM_DATA}/wal").exists(), 20, what="the child's data")
    owner = box.run("stat", "-c", "%U %a", PROM_DATA).check().stdout.split()
    assert owner == ["ampd-prometheus", "750"]
    out = drive(box, [("forget_data", "prometheus"), ("observe", "prometheus")])
    assert out[0] is None, out
    assert out[1]["running"] is False
    assert box.show(unit, "ActiveState")["ActiveState"] == "inactive"
    assert not box.path(PROM_DATA).exists()
    # the unit starts again, with an empty data directory of its own
    drive(box, [("start", writer)])
    box.wait_for(unit, ActiveState="active")
    drive(box, [("stop", "prometheus")])


def test_a_clean_that_fails_in_systemd_raises_and_the_next_one_succeeds(
    ampd_box: SysBox,
) -> None:
    """systemctl clean exits 0 on systemd 252 even when systemd could not remove the
    directory (here a mount point inside it); forget_data reads the unit's CleanResult.
    The unit is left failed by that; the next forget_data resets it and cleans."""
    box = ampd_box
    prepare_state_dir(box)
    busy = f"{GRAFANA_DATA}/busy"
    box.run("install", "-d", "-o", "ampd-grafana", "-g", "ampd-grafana", "-m", "0750", busy).check()
    box.run("mount", "-t", "tmpfs", "tmpfs", busy).check()
    box.write_file(f"{busy}/grafana.db", "the other instance's")
    failed = drive(box, [("forget_data", "grafana")])[0]
    assert failed is not None and failed["error"] == "TemporaryError", failed
    assert "CleanResult=exit-code" in failed["message"], failed
    assert box.path(f"{busy}/grafana.db").exists()
    box.run("umount", busy).check()
    assert drive(box, [("forget_data", "grafana")]) == [None]
    assert not box.path(GRAFANA_DATA).exists()
