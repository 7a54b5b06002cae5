"""kill -9 of Prometheus under the systemd runtime (issue #23, "Recovery").

One booted box (tests/harness/sysbox.py) runs the real ``ampd.service`` with a real
Prometheus (the host's Debian binary, copied into the box) as ``ampd-prometheus.service``,
everything as shipped: the units' sandboxes and users, ampd as user ``ampd``. Then
``kill -9`` of the unit's MainPID:

- systemd starts a new MainPID within a second (RestartSec=100ms, Restart=always);
- ampd notices the exit itself (a pidfd on the MainPID, under ampd.service's sandbox):
  a pass triggered by ``exit:prometheus`` (its reconcile.summary journal line) begins
  well before any timer or recheck would have run one;
- that pass waits (bounded) for the new Prometheus' /-/ready and reports it Healthy;
  status.json shows Prometheus Healthy again, with the new pid.

Each measured time is in the assertion messages and printed.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import time
from typing import Any

import pytest
import yaml

from tests.harness.sysbox import SysBox
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.slow, pytest.mark.prometheus]

PROM_LISTEN = "127.0.0.1:9090"
STATE = "/etc/ampd/state.yml"
STATUS = "/run/ampd/status.json"
UNIT = "ampd-prometheus.service"
# AMPD_CHILD_EXIT_KILLS (default 3) and AMPD_CHILD_EXIT_UP (seconds Prometheus runs
# before each kill, default 0): more kills, spaced, are the benchmark's run. The unit's
# start limit is 5 starts within 20 s: more kills than that, close together, are a crash
# loop (tested apart).
KILLS = int(os.environ.get("AMPD_CHILD_EXIT_KILLS", "3"))
UP = float(os.environ.get("AMPD_CHILD_EXIT_UP", "0"))
NEW_PID_WITHIN = 1.5  # RestartSec=100ms (was 2 s), on a shared, busy machine
# The exit's pass logs its summary when it ends: within this of the kill. Prometheus was
# Healthy, so no recheck was due, and the idle timer is 30 s: only the exit queues it, so
# anything well under 30 s (with the exit named in its triggers) is the exit's own pass.
# Speed is the benchmark's business (docs/benchmarks.md), not this bound's.
PASS_WITHIN = 15.0
HEALTHY_WITHIN = 10.0


def state_text() -> str:
    doc = {
        "version": 1,
        "stack": "childexit",
        "runtime": "systemd",
        "prometheus": {
            "binary": "/usr/local/bin/prometheus",
            "mode": "agent",
            "listen": PROM_LISTEN,
            "scrape_interval": "5s",
            "scrape_configs": [{"job": "a", "targets": ["127.0.0.1:9795"]}],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def status(box: SysBox) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads(box.read_file(STATUS))
    except FileNotFoundError:
        return None
    return doc


def prometheus_healthy(box: SysBox, pid: str) -> dict[str, Any] | None:
    """status.json once it reports Prometheus Healthy with MainPID ``pid``."""
    s = status(box)
    if s is None:
        return None
    for r in s["resources"]:
        prom = r["kind"] == "process" and r["name"] == "prometheus"
        if prom and r["health"] == "Healthy" and r["message"] == f"pid {pid}":
            return s
    return None


def main_pid(box: SysBox) -> str:
    return box.show(UNIT, "MainPID")["MainPID"]


def new_main_pid(box: SysBox, old: str) -> str | None:
    pid = main_pid(box)
    return pid if pid not in ("0", old) else None


def summaries(box: SysBox, ampd_pid: str) -> list[dict[str, Any]]:
    """ampd's reconcile.summary journal entries."""
    out = box.run("journalctl", "--no-pager", "-o", "json", f"_PID={ampd_pid}").check().stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [e for e in entries if e.get("AMPD_EVENT") == "reconcile.summary"]


def exit_pass(box: SysBox, ampd_pid: str, after: float) -> dict[str, Any] | None:
    """The first pass after wall-clock ``after`` that the exit of Prometheus queued."""
    for e in summaries(box, ampd_pid):
        at = int(e["__REALTIME_TIMESTAMP"]) / 1e6
        if at > after and "exit:prometheus" in e.get("AMPD_TRIGGERS", ""):
            return e
    return None


def _past(moment: float) -> bool:
    return time.monotonic() >= moment


def why(box: SysBox) -> str:
    return (
        f"status: {json.dumps(status(box))[:3000]}\n"
        f"{box.journal('ampd.service', lines=30)}\n{box.journal(UNIT, lines=15)}"
    )


def start_ampd(box: SysBox) -> tuple[str, str]:
    """ampd.service running the state file with a real Prometheus; once status.json says
    it is Healthy: (ampd's pid, Prometheus' MainPID)."""
    for binary in ("prometheus", "promtool"):
        shutil.copy2(f"/usr/bin/{binary}", box.path(f"/usr/local/bin/{binary}"))
    group = box.read_file("/etc/group").splitlines()
    ampd_gid = next(int(ln.split(":")[2]) for ln in group if ln.startswith("ampd:"))
    state = box.path(STATE)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(state_text())
    os.chown(state, 0, ampd_gid)
    state.chmod(0o640)

    box.run("systemctl", "start", "ampd.service", timeout=90).check()
    box.wait_for("ampd.service", timeout=60, ActiveState="active")
    ampd_pid = box.show("ampd.service", "MainPID")["MainPID"]
    pid = wait_for(
        functools.partial(new_main_pid, box, "0"),
        60,
        what="Prometheus running",
        retry_on=(),
        detail=functools.partial(why, box),
    )
    wait_for(
        functools.partial(prometheus_healthy, box, pid),
        90,
        what="a first Healthy status",
        retry_on=(),
        detail=functools.partial(why, box),
    )

    return ampd_pid, pid


def test_kill_9_of_prometheus_is_restarted_at_once_and_noticed_by_ampd(
    ampd_box: SysBox,
) -> None:
    box = ampd_box
    ampd_pid, pid = start_ampd(box)

    results: list[str] = []
    healthy_times: list[float] = []
    for i in range(KILLS):
        up_until = time.monotonic() + UP
        wait_for(
            functools.partial(_past, up_until), UP + 5, what=f"kill {i}: {UP:.0f} s up", retry_on=()
        )
        old = pid
        killed_wall = time.time()
        killed = time.monotonic()
        box.run("kill", "-9", old).check()

        pid = wait_for(
            functools.partial(new_main_pid, box, old),
            10,
            what=f"kill {i}: a new MainPID",
            retry_on=(),
            detail=functools.partial(why, box),
        )
        new_pid_s = time.monotonic() - killed
        entry = wait_for(
            functools.partial(exit_pass, box, ampd_pid, killed_wall),
            10,
            what=f"kill {i}: a pass triggered by exit:prometheus",
            retry_on=(),
            detail=functools.partial(why, box),
        )
        pass_s = int(entry["__REALTIME_TIMESTAMP"]) / 1e6 - killed_wall
        healthy = wait_for(
            functools.partial(prometheus_healthy, box, pid),
            HEALTHY_WITHIN,
            what=f"kill {i}: Prometheus Healthy with pid {pid}",
            retry_on=(),
            detail=functools.partial(why, box),
        )
        healthy_s = time.monotonic() - killed
        healthy_times.append(healthy_s)
        line = (
            f"kill {i}: new MainPID {pid} after {new_pid_s * 1000:.0f} ms; the exit's pass "
            f"({entry.get('RECONCILE_ID')}) logged {pass_s * 1000:.0f} ms after the kill, "
            f"triggers {entry.get('AMPD_TRIGGERS')}, health {entry.get('AMPD_HEALTH')}; "
            "Healthy in status.json after "
            f"{healthy_s * 1000:.0f} ms"
        )
        print(line)
        results.append(line)
        assert new_pid_s < NEW_PID_WITHIN, line
        # a pass logs when it ends; the one the exit queued ends within this
        assert pass_s < PASS_WITHIN, line
        # the exit's pass waited for the restarted Prometheus' /-/ready itself (bounded)
        assert entry.get("AMPD_HEALTH") == "Healthy", line
        assert healthy["runtime"] == "systemd", healthy["runtime"]

    # ampd's own look at the unit never refused the pidfd (ampd.service's sandbox)
    journal = box.run("journalctl", "--no-pager", f"_PID={ampd_pid}").stdout
    assert "pidwatch.unavailable" not in journal, journal[-3000:]
    # systemd restarted it each time; ampd started it once (the first pass), never again
    assert box.show(UNIT, "NRestarts")["NRestarts"] == str(KILLS), results
    print("\n".join(results))
    p50, top = statistics.median(healthy_times) * 1000, max(healthy_times) * 1000
    print(f"kill -9 -> Healthy: p50 {p50:.0f} ms, max {top:.0f} ms")


CRASHING = "#!/bin/sh\necho 'prometheus: giving up' >&2\nsleep 0.3\nexit 3\n"
LOOP_WINDOW = 25.0  # less than the start limit's 20 s plus ampd's 30 s backoff


def install_binary(box: SysBox, text: str | None) -> None:
    """/usr/local/bin/prometheus: ``text`` (a script) or the real binary; atomic."""
    target = box.path("/usr/local/bin/prometheus")
    tmp = target.with_suffix(".new")
    if text is None:
        shutil.copy2("/usr/bin/prometheus", tmp)
    else:
        tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.rename(target)


def runs_of(box: SysBox, since: float) -> int:
    """Starts of the crashing script since wall-clock ``since`` (its stderr line)."""
    out = box.run(
        "journalctl", "--no-pager", "-o", "cat", f"--since=@{since:.3f}", f"_SYSTEMD_UNIT={UNIT}"
    ).stdout
    return out.count("prometheus: giving up")


def crash_looping(box: SysBox) -> dict[str, Any] | None:
    s = status(box)
    for r in (s or {}).get("resources", []):
        if r["name"] == "prometheus" and "crash-looping (exit 3)" in (r["message"] or ""):
            return dict(r)
    return None


def test_a_crash_loop_ends_in_failed_and_ampd_does_not_drive_it(ampd_box: SysBox) -> None:
    """A Prometheus that exits 3 at every start: systemd restarts it at once until its
    start limit (5 starts within 20 s), then ampd reports it crash-looping and leaves it
    alone for 30 s, although every exit queues a pass; fixed, it comes back Healthy."""
    box = ampd_box
    _, pid = start_ampd(box)
    install_binary(box, CRASHING)
    since = time.time()
    box.run("kill", "-9", pid).check()
    looping = wait_for(
        functools.partial(crash_looping, box),
        30,
        what="crash-looping in status.json",
        retry_on=(),
        detail=functools.partial(why, box),
    )
    failed_s = time.time() - since
    assert looping["health"] == "Degraded", looping
    props = box.show(UNIT, "ActiveState", "Result")
    assert props["ActiveState"] == "failed", props  # systemd gave up: its start limit
    wait_for(
        functools.partial(_past, time.monotonic() + LOOP_WINDOW - failed_s),
        30,
        what="the window",
        retry_on=(),
    )
    runs = runs_of(box, since)
    print(f"crash loop: failed after {failed_s:.1f} s; {runs} runs in {LOOP_WINDOW:.0f} s")
    # a restart per exit (what ampd would drive with reset-failed) is ~40 runs in 25 s
    assert 4 <= runs <= 6, f"{runs} runs in {LOOP_WINDOW:.0f} s\n{why(box)}"

    install_binary(box, None)
    fixed = time.monotonic()
    s = wait_for(
        functools.partial(healthy_any, box),
        60,
        what="Healthy again",
        retry_on=(),
        detail=functools.partial(why, box),
    )
    print(f"fixed binary -> Healthy after {time.monotonic() - fixed:.1f} s (backoff 30 s)")
    assert s["health"] == "Healthy", s


def healthy_any(box: SysBox) -> dict[str, Any] | None:
    s = status(box)
    return s if s is not None and s["health"] == "Healthy" else None
