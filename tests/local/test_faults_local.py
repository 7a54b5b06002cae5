"""Local faults: a Prometheus that crash-loops, and instance metadata that answers too slowly.

Same rig as tests/engine/test_faults.py (a daemon, the AWS emulator, a real Prometheus); everything
is read through status.json, ampd's log events and the processes themselves.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ampd.engine.facts import IMDS_RETRY
from ampd.gateways.imds import TIMEOUT as IMDS_TIMEOUT
from tests.aws.test_faults_aws import proxy_up, with_proxy
from tests.engine.test_faults import Rig, rig
from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_local import prometheus_pids
from tests.harness.imds import ImdsServer
from tests.harness.wait import wait_for

__all__ = ["rig"]  # the fixture, shared with tests/engine/test_faults.py

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]

GOOD = '#!/bin/sh\nexec /usr/bin/prometheus "$@"\n'
# answers --version like the real one (ampd probes it), otherwise dies after half a second
CRASHING = (
    "#!/bin/sh\n"
    'case "$1" in --version|-v) exec /usr/bin/prometheus "$@";; esac\n'
    "echo 'fake prometheus: giving up' >&2\nsleep 0.5\nexit 3\n"
)
WINDOW = 20.0  # seconds in which restarts are counted


def install(path: Path, text: str) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.rename(path)  # atomic: a start never sees half a script


def exits(r: Rig) -> list[dict[str, Any]]:
    return [e for e in r.proc.events("process.exited") if e.get("process") == "prometheus"]


def test_crash_looping_server_is_backed_off_and_heals(rig: Rig, tmp_path: Path) -> None:
    binary = trusted_dir() / "prometheus"
    (binary.parent / "promtool").symlink_to("/usr/bin/promtool")
    install(binary, GOOD)
    rig.binary = str(binary)
    port = with_proxy(rig)
    rig.start()
    ampd_pid = rig.proc.proc.pid if rig.proc.proc else 0
    install(binary, CRASHING)
    for pid in prometheus_pids(str(rig.proc.state_dir)):
        os.kill(pid, signal.SIGKILL)
    first = wait_for(lambda: len(exits(rig)) >= 2, 60, what="a first crash")
    assert first
    start = time.monotonic()
    n0 = len(exits(rig))

    def looping() -> dict[str, Any] | None:
        res = rig.proc.resource("process", "prometheus")
        return res if res and "crash-looping (exit 3)" in (res["message"] or "") else None

    res = wait_for(looping, WINDOW, what="crash-looping reported with its exit status")
    assert "giving up" in res["message"], res  # its stderr is shown too
    assert res["health"] == "Degraded"
    assert rig.proc.ampd("status").returncode == 3
    assert proxy_up(port)  # the proxy and ampd itself stay up
    assert rig.proc.proc is not None and rig.proc.proc.pid == ampd_pid
    assert rig.proc.proc.poll() is None
    left = WINDOW - (time.monotonic() - start)
    if left > 0:  # let the window run out; only counting happens meanwhile
        wait_for(lambda: time.monotonic() - start >= WINDOW, left + 5, what="the window to pass")
    restarts = len(exits(rig)) - n0
    # each run lasts 0.5 s: a tight loop would crash ~40 times in 20 s; with a backoff
    # doubling from 1 s there are at most 5-6 (measured: see docs/reliability.md)
    assert 1 <= restarts <= 8, f"{restarts} crashes in {WINDOW:.0f} s"
    backoffs = [float(e["backoff"]) for e in exits(rig)]
    print(f"crash loop: {restarts} crashes in {WINDOW:.0f} s, backoffs {backoffs}")
    assert backoffs == sorted(backoffs) and backoffs[-1] >= 8, backoffs
    install(binary, GOOD)
    wait_for(
        lambda: (r := rig.proc.resource("process", "prometheus")) and r["health"] == "Healthy",
        120,
        what="prometheus back",
    )
    assert rig.prom_ready()
    assert proxy_up(port)
    rig.proc.wait_healthy(timeout=60)


def test_imds_slower_than_its_timeout(rig: Rig, imds: ImdsServer) -> None:
    """IMDS answers after 3 s (ampd waits 1 s): passes go on without it, instance labels are
    left out and ``InstanceMetadata=False`` says why; once IMDS answers in time the labels
    come in by themselves (a reload of the same Prometheus)."""
    imds.delay = IMDS_TIMEOUT + 2
    with_proxy(rig)
    base = rig.state

    def state() -> dict[str, Any]:
        doc = base()
        doc["prometheus"]["instance_labels"] = ["instance_id"]
        doc["prometheus"]["remote_write"] = {"signing": "proxy"}
        return doc

    rig.state = state  # type: ignore[method-assign]  # instance labels need remote_write
    rig.write()
    rig.proc.start()
    cond = rig.condition("InstanceMetadata", "False", timeout=90)
    assert "did not answer in time" in cond["message"]
    generated = rig.proc.state_dir / "generated" / "prometheus.yml"
    wait_for(generated.exists, 60, what="prometheus.yml written")
    assert imds.instance_id not in generated.read_text()
    wait_for(lambda: len(prometheus_pids(str(rig.proc.state_dir))) == 1, 60, what="Prometheus up")
    pid = rig.prom_pid()
    n = len(rig.proc.events("reconcile.summary"))
    wait_for(lambda: len(rig.proc.events("reconcile.summary")) >= n + 1, 60, what="another pass")
    slowest = max(float(e["duration_ms"]) for e in rig.proc.events("reconcile.summary"))
    assert slowest < 15_000, f"a pass took {slowest:.0f} ms"  # never hung on IMDS
    imds.delay = 0.0
    rig.condition("InstanceMetadata", "True", timeout=IMDS_RETRY + 60)
    wait_for(lambda: imds.instance_id in generated.read_text(), 60, what="the label live")
    assert rig.prom_pid() == pid
    assert rig.prom_ready()
