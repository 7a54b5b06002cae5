"""The IMDS fence under a real systemd (the box of tests/harness/sysbox.py): ampd, as its
unprivileged user, sets a child unit's IPAddressDeny= live (polkit verb "set-property";
the bus passes SetUnitProperties on), and the kernel then drops that child's packets to
169.254.169.254 while the unit keeps running.

The box has its own network namespace: 169.254.169.254/32 is added to its loopback
(netlink, no iproute2 in the box) and a listener stands in for IMDS there.
"""

from __future__ import annotations

import json

import pytest

from tests.harness.fixtures_systemd import VENV_PYTHON, drive, prepare_state_dir
from tests.harness.sysbox import SysBox
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

IMDS_IP = "169.254.169.254"
PROM_UNIT = "ampd-prometheus.service"
PROXY_UNIT = "ampd-sigv4-proxy.service"
SEEN = "/var/lib/ampd/data/prometheus/imds"
# RTM_NEWADDR: 169.254.169.254/32 on lo (what `ip addr add` does).
ADD_ADDRESS = f"""
import socket, struct
lo = socket.if_nametoindex("lo")
addr = socket.inet_aton({IMDS_IP!r})
attrs = b"".join(struct.pack("=HH", 8, kind) + addr for kind in (1, 2))  # IFA_ADDRESS, IFA_LOCAL
body = struct.pack("=BBBBI", socket.AF_INET, 32, 0, 254, lo) + attrs  # scope host
msg = struct.pack("=IHHII", 16 + len(body), 20, 0x1 | 0x4 | 0x400 | 0x200, 1, 0) + body
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.sendto(msg, (0, 0))
ack = s.recv(4096)
error = struct.unpack_from("=i", ack, 16)[0]
assert error == 0, f"RTM_NEWADDR: errno {{-error}}"
"""
LISTEN = f"""
import socket
srv = socket.create_server(({IMDS_IP!r}, 80))
while True:
    conn, _ = srv.accept()
    conn.close()
"""
# The child: every 0.1 s, connect to IMDS (0.5 s at most) and write what it saw.
PROBE = f"""
import os, socket, time
while True:
    try:
        socket.create_connection(({IMDS_IP!r}, 80), timeout=0.5).close()
        seen = "open"
    except OSError as e:
        seen = "blocked: " + type(e).__name__
    with open({SEEN!r} + ".tmp", "w") as f:
        f.write(f"{{os.getpid()}} {{seen}}")
    os.replace({SEEN!r} + ".tmp", {SEEN!r})
    time.sleep(0.1)
"""
# One pass of ampd's local side, as ampd: Prometheus signs through the proxy.
PASS = """
import json
from dataclasses import dataclass
from pathlib import Path
from ampd.engine.side import run_side
from ampd.gateways.files import FileWriter
from ampd.gateways.paths import Paths
from ampd.gateways.store import Store
from ampd.gateways.runtime import ProcessControl
from ampd.gateways.systemd import SystemdRuntime
from ampd.local.render.context import WorkspaceFacts
from ampd.engine.facts import Facts
from ampd.local.side.side import LocalSide
from ampd.spec.models import StateSpec

base = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1"
ws = WorkspaceFacts("ws-1", "eu-west-1", base + "/api/v1/remote_write", base + "/api/v1/query")
spec = StateSpec.model_validate({
    "version": 1,
    "workspace": {"alias": "a"},
    "prometheus": {"remote_write": {"signing": "proxy"}},
    "metrics": {"enabled": False},
})


@dataclass(frozen=True)
class Writers:
    store: Store
    processes: ProcessControl
    files: FileWriter


paths = Paths(Path("/var/lib/ampd"), Path("/run/ampd-test"))
runtime = SystemdRuntime(paths)
store = Store(paths.state_dir / "ampd.json")
side = LocalSide(paths, runtime, store, state_path="/etc/ampd/state.yml")
facts = Facts(workspace=ws, prometheus_version=(2, 53, 0))
result = run_side(side, spec, facts, Writers(store, runtime, FileWriter()))
print(json.dumps([[c.type, c.status.value, c.message] for c in result.conditions]))
"""


def deny(box: SysBox, unit: str) -> str:
    return box.show(unit, "IPAddressDeny")["IPAddressDeny"]


def seen(box: SysBox) -> tuple[str, str] | None:
    try:
        pid, _, what = box.read_file(SEEN).partition(" ")
    except OSError:
        return None
    return pid, what


def seen_if(box: SysBox, *, opened: bool) -> tuple[str, str] | None:
    got = seen(box)
    return got if got is not None and (got[1] == "open") is opened else None


def test_ampd_fences_a_running_child_live_and_its_packets_drop(ampd_box: SysBox) -> None:
    box = ampd_box
    prepare_state_dir(box)
    box.run(VENV_PYTHON, "-c", ADD_ADDRESS).check()
    box.write_file("/run/imds-listen.py", LISTEN)
    box.run("systemd-run", "--unit=imds-listen", VENV_PYTHON, "/run/imds-listen.py").check()
    box.write_file("/run/imds-probe.py", PROBE)
    probe = {"name": "prometheus", "argv": [VENV_PYTHON, "/run/imds-probe.py"], "env": {}}
    assert deny(box, PROM_UNIT) == ""

    # as ampd does it: the fence before the start
    out = drive(box, [("set_imds", {"name": "prometheus", "allowed": False}), ("start", probe)])
    assert out == [None, None], out
    assert IMDS_IP in deny(box, PROM_UNIT) and "fd00:ec2::254" in deny(box, PROM_UNIT)
    first = wait_for(
        lambda: seen(box),
        what="the child's first look",
        retry_on=(),
        detail=lambda: box.journal(PROM_UNIT),
    )
    assert first[1] == "blocked: TimeoutError", first  # dropped, not refused

    # the same unit, still running, allowed again: it reaches the stand-in, no restart
    assert drive(box, [("set_imds", {"name": "prometheus", "allowed": True})]) == [None]
    assert deny(box, PROM_UNIT) == ""
    opened = wait_for(
        lambda: seen_if(box, opened=True), what="the child reaching IMDS", retry_on=()
    )
    assert opened[0] == first[0], "the same process: applied live"
    # and fenced again, live
    drive(box, [("set_imds", {"name": "prometheus", "allowed": False})])
    again = wait_for(lambda: seen_if(box, opened=False), what="the child fenced again", retry_on=())
    assert again == (first[0], "blocked: TimeoutError")
    drive(box, [("stop", "prometheus")])


def test_a_pass_with_prometheus_signing_through_the_proxy_fences_prometheus_only(
    ampd_box: SysBox,
) -> None:
    box = ampd_box
    prepare_state_dir(box)
    box.run("install", "-d", "-o", "ampd", "-m", "0700", "/run/ampd-test").check()
    done = box.run(VENV_PYTHON, "-c", PASS, user="ampd", timeout=120).check()
    conditions = {c[0]: c for c in json.loads(done.stdout.strip().splitlines()[-1])}
    assert conditions["ImdsFenced"][1] == "True", conditions
    assert "prometheus" in conditions["ImdsFenced"][2]
    # systemd lists the set in no fixed order
    assert sorted(deny(box, PROM_UNIT).split()) == ["169.254.169.254/32", "fd00:ec2::254/128"]
    assert deny(box, PROXY_UNIT) == ""
    assert deny(box, "ampd-grafana.service") == ""  # not enabled: not touched
