"""A local user who takes a managed port is named, and is sent nothing: the real ``ampd
run`` (supervisor runtime), a real Prometheus, the built-in proxy and the Grafana stand-in,
against a squatter running as ``nobody`` that answers ``200 ok`` to everything.

- a port taken before ampd starts (Prometheus', Grafana's): ``ListenersOwned=False``
  names the squatter's uid, the address and the process; the process is not Healthy; ampd
  never connects to the squatter;
- the proxy's port taken in a restart window (the proxy killed): the same, and
  ``RemoteWriteFlowing`` is not True while it lasts; no Authorization header ever reaches
  the squatter (Prometheus' unsigned writes do: the samples are what the condition is
  about).
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures_aws import DATA_PLANE_URL, REGION, AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.squatter import Squatter
from tests.harness.wait import wait_for
from tests.local.test_grafana_daemon import standin_binary

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]


def _state(ports: dict[str, int], tmp_path: Path, *, grafana: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": 1,
        "stack": "squat",
        "aws": {"region": REGION, "data_plane_url": DATA_PLANE_URL},
        "workspace": {"alias": "squat"},
        "prometheus": {
            "listen": f"127.0.0.1:{ports['prometheus']}",
            "scrape_configs": [{"job": "app", "targets": ["127.0.0.1:1"]}],
            "remote_write": {"signing": "proxy"},
        },
        "proxy": {"enabled": True, "listen": f"127.0.0.1:{ports['sigv4-proxy']}"},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "runtime": "supervisor",
    }
    if grafana:
        doc["grafana"] = {
            "enabled": True,
            "binary": standin_binary(tmp_path, "12.0.2"),
            "listen": f"127.0.0.1:{ports['grafana']}",
        }
    return doc


def _squatted(ampd: AmpdProcess) -> dict[str, Any] | None:
    c = ampd.condition("ListenersOwned")
    return c if c is not None and c["status"] == "False" else None


def _passes_after(ampd: AmpdProcess, n: int) -> None:
    """Wait until ``n`` more passes have written status (a pass ends with its summary)."""
    start = len(ampd.events("reconcile.summary"))
    wait_for(
        lambda: len(ampd.events("reconcile.summary")) >= start + n, 60, what=f"{n} more passes"
    )


def _assert_named(cond: dict[str, Any], listen: str, process: str, uid: int) -> None:
    assert f"{listen} ({process}) is held by uid {uid} (nobody)" in cond["message"], cond
    assert cond["reason"] == "Squatted"


@pytest.mark.parametrize("victim", ["prometheus", "grafana"])
def test_a_port_taken_before_start_is_named_and_sent_nothing(
    victim: str, aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess, tmp_path: Path
) -> None:
    ports = {n: free_port() for n in ("prometheus", "sigv4-proxy", "grafana")}
    listen = f"127.0.0.1:{ports[victim]}"
    with Squatter("127.0.0.1", ports[victim]) as squatter:
        squatter.wait_bound(10)
        ampd_proc.write_state(_state(ports, tmp_path, grafana=victim == "grafana"))
        ampd_proc.start()
        cond = wait_for(lambda: _squatted(ampd_proc), 60, what="ListenersOwned=False")
        _assert_named(cond, listen, victim, squatter.uid)
        _passes_after(ampd_proc, 2)  # ampd keeps looking, and keeps sending nothing
        res = ampd_proc.resource("process", victim)
        assert res is not None and res["health"] != "Healthy", res
        doc = ampd_proc.status()
        assert doc is not None and doc["health"] != "Healthy"
        if victim == "prometheus":
            flow = ampd_proc.condition("RemoteWriteFlowing")
            assert flow is None or flow["status"] != "True", flow
        assert ampd_proc.stop() == 0
    assert squatter.received == [], squatter.received


def _proxy_pids(state_dir: Path) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if " proxy" in cmd and str(state_dir) in cmd:
            out.append(int(d.name))
    return out


_REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r\n")


def test_the_proxy_port_taken_in_a_restart_window(
    aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess, tmp_path: Path
) -> None:
    ports = {n: free_port() for n in ("prometheus", "sigv4-proxy", "grafana")}
    listen = f"127.0.0.1:{ports['sigv4-proxy']}"
    ampd_proc.write_state(_state(ports, tmp_path, grafana=False))
    ampd_proc.start()
    ampd_proc.wait_healthy(timeout=90)
    owned = ampd_proc.condition("ListenersOwned")
    assert owned is not None and owned["status"] == "True", owned
    [pid] = wait_for(lambda: _proxy_pids(ampd_proc.state_dir), 30, what="the proxy's pid")
    # The squatter spins on bind(); the proxy dies; the port is the squatter's long before
    # the supervisor's new proxy has even imported Python.
    with Squatter("127.0.0.1", ports["sigv4-proxy"], bind_for=30) as squatter:
        os.kill(pid, signal.SIGKILL)
        squatter.wait_bound(30)
        cond = wait_for(lambda: _squatted(ampd_proc), 60, what="ListenersOwned=False")
        _assert_named(cond, listen, "sigv4-proxy", squatter.uid)
        _passes_after(ampd_proc, 2)
        flow = ampd_proc.condition("RemoteWriteFlowing")
        assert flow is not None and flow["status"] != "True", flow
        res = ampd_proc.resource("process", "sigv4-proxy")
        assert res is not None and res["health"] != "Healthy", res
        assert ampd_proc.stop() == 0
    for raw in squatter.received:
        assert b"authorization:" not in raw.lower(), raw
        m = _REQUEST_LINE.match(raw)
        if m is not None:  # only Prometheus' unsigned remote writes; no probe, no scrape
            assert m.group(1) == b"POST" and b"remote_write" in m.group(2), raw
