"""Edit -> config live: time from writing state.yml to the real Prometheus scraping the
new job, and from a kill -9 to a healthy Prometheus again. Bounded: 10 rounds each."""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.report import write_section
from tests.harness.fixtures_local import AmpdProcess, free_port, wait_for
from tests.test_daemon_local import base_state, get_json, resource, scrape_jobs

ROUNDS = 10


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def config_has(listen: str, job: str) -> bool:
    return f"job_name: {job}" in get_json(f"http://{listen}/api/v1/status/config")["data"]["yaml"]


def job_live(listen: str, job: str) -> bool:
    return job in scrape_jobs(listen)


def replaced(proc: AmpdProcess, pid: int) -> bool:
    r = proc.resource("process", "prometheus")
    return r is not None and r["health"] == "Healthy" and r["message"] != f"pid {pid}"


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        proc = AmpdProcess(Path(d))
        prom, met = free_port(), free_port()
        listen = f"127.0.0.1:{prom}"
        proc.write_state(base_state(prom, met))
        proc.start()
        try:
            proc.wait_healthy(60)
            edits: list[float] = []
            live: list[float] = []
            for i in range(ROUNDS):
                t0 = time.perf_counter()
                proc.write_state(
                    base_state(prom, met, jobs=[{"job": f"b{i}", "targets": ["127.0.0.1:1"]}])
                )
                wait_for("config live", partial(config_has, listen, f"b{i}"), 30, every=0.005)
                live.append(time.perf_counter() - t0)
                wait_for("job live", partial(job_live, listen, f"b{i}"), 30, every=0.01)
                edits.append(time.perf_counter() - t0)
            restarts: list[float] = []
            for _ in range(3):
                pid = int(resource(proc, "process", "prometheus")["message"].split()[-1])
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                wait_for("healthy again", partial(replaced, proc, pid), 60, every=0.01)
                restarts.append(time.perf_counter() - t0)
            passes = [e["duration_ms"] for e in proc.events("reconcile.summary")]
            assert proc.proc is not None
            rss_mib = rss_kib(proc.proc.pid) / 1024
        finally:
            proc.stop()
    q = statistics.quantiles(edits, n=20, method="inclusive")
    live_q = statistics.quantiles(live, n=20, method="inclusive")
    md = "\n".join(
        [
            "## Convergence (bench/bench_converge.py)",
            "",
            f"Real Prometheus {os.uname().machine}, supervisor runtime, {ROUNDS} edits.",
            "",
            "| measure | p50 | p95 | max |",
            "|---|---|---|---|",
            f"| state.yml edit -> new config live in Prometheus (/api/v1/status/config) | "
            f"{ms(statistics.median(live))} | {ms(live_q[18])} "
            f"| {ms(max(live))} |",
            f"| state.yml edit -> new job in /api/v1/targets (Prometheus applies target "
            f"changes at most every 5 s) | {statistics.median(edits) * 1000:.0f} ms "
            f"| {q[18] * 1000:.0f} ms | {max(edits) * 1000:.0f} ms |",
            f"| kill -9 Prometheus -> Healthy again (3 rounds, backoff 1-2 s) | "
            f"{statistics.median(restarts) * 1000:.0f} ms | - | {max(restarts) * 1000:.0f} ms |",
            f"| ampd daemon resident memory after {ROUNDS} edits and 3 restarts | "
            f"{rss_mib:.0f} MiB | - | - |",
            f"| reconcile pass duration ({len(passes)} passes) | "
            f"{statistics.median(passes):.0f} ms | - | {max(passes):.0f} ms |",
        ]
    )
    write_section("converge", md)
    print(md)


if __name__ == "__main__":
    main()
