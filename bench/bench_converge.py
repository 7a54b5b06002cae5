"""Edit -> config live, ampd against a bare script in the same run, and where ampd's time
goes; and kill -9 of Prometheus -> Healthy again against Prometheus' own start -> ready.

ampd: write state.yml, poll the real Prometheus' /api/v1/status/config until the new job
is in it. Bare: write prometheus.yml (temp file + rename), SIGHUP until its metrics say
the reload took, poll the same way, against a Prometheus of its own. Stages come from
ampd's own log of each edit (spec.loaded, change.applied) and from timing each step alone
(the inotify watcher, spec load, render, promtool -- which runs only when Prometheus will
start on a new file -- and reload).

    python -m bench.bench_converge [--rounds 20] [--kills 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from bench.report import environment, write_section
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.prom import Prometheus
from tests.harness.wait import wait_for
from tests.local.test_daemon_local import base_state, get_json, resource

GOAL_P95_MS = 50.0
GOAL_RATIO = 10.0
GOAL_RESTART_RATIO = 3.0  # kill -9 -> Healthy within 3x Prometheus' own start -> ready
STABLE_AFTER = 10.0  # ampd.gateways.supervisor: a run this long ends a crash loop
STARTS = 5


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def q95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[18] if len(xs) > 1 else xs[0]


def config_has(listen: str, job: str) -> bool:
    return f"job_name: {job}" in get_json(f"http://{listen}/api/v1/status/config")["data"]["yaml"]


def replaced(proc: AmpdProcess, pid: int) -> bool:
    r = proc.resource("process", "prometheus")
    return r is not None and r["health"] == "Healthy" and r["message"] != f"pid {pid}"


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def _applied(events: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((e for e in events if e.get("key") == key and "applied" in e["event"]), None)


def stages(proc: AmpdProcess, edits: list[tuple[float, float]]) -> dict[str, list[float]]:
    """Per edit, from ampd's debug log: edit -> watcher trigger -> spec loaded ->
    prometheus.yml checked, rendered and written -> reload sent -> config seen live."""
    events = [e for e in proc.logs() if "timestamp" in e]
    names = ["watch (inotify)", "debounce + spec load", "check + render + write", "reload"]
    out: dict[str, list[float]] = {n: [] for n in [*names, "reload -> seen live"]}
    for t0, t1 in edits:
        window = [e for e in events if t0 <= _ts(e) <= t1 + 0.5]
        marks = [
            next((e for e in window if e["event"] == "trigger"), None),
            next((e for e in window if e["event"] == "spec.loaded"), None),
            _applied(window, "file/prometheus.yml"),
            _applied(window, "process/prometheus"),
        ]
        if any(m is None for m in marks):
            continue
        times = [t0, *(_ts(m) for m in marks if m is not None)]
        for name, a, b in zip(names, times, times[1:], strict=False):
            out[name].append(max(0.0, b - a))
        out["reload -> seen live"].append(max(0.0, t1 - times[-1]))
    return out


class DebugAmpd(AmpdProcess):
    """``ampd run`` with debug logging (the watcher's trigger events)."""

    log_level = "debug"


def ampd_rounds(
    rounds: int, kills: int
) -> tuple[list[float], dict[str, list[float]], list[float], float]:
    with tempfile.TemporaryDirectory() as d:
        proc = DebugAmpd(Path(d))
        prom, met = free_port(), free_port()
        listen = f"127.0.0.1:{prom}"
        proc.write_state(base_state(prom, met))
        proc.start()
        try:
            proc.wait_healthy(60)
            time.sleep(1.0)
            live: list[float] = []
            marks: list[tuple[float, float]] = []
            for i in range(rounds):
                jobs = [{"job": f"b{i}", "targets": ["127.0.0.1:1"]}]
                w0, t0 = time.time(), time.perf_counter()
                proc.write_state(base_state(prom, met, jobs=jobs))
                wait_for(
                    partial(config_has, listen, f"b{i}"), 30, what="config live", interval=0.002
                )
                live.append(time.perf_counter() - t0)
                marks.append((w0, w0 + live[-1]))
                time.sleep(0.3)  # the next edit is a separate edit, not part of a burst
            restarts: list[float] = []
            for _ in range(kills):
                # a Prometheus that ran a while and dies is a crash, not a crash loop: the
                # supervisor restarts it at once (backoff is for repeated quick crashes)
                time.sleep(STABLE_AFTER + 0.5)
                pid = int(resource(proc, "process", "prometheus")["message"].split()[-1])
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                wait_for(partial(replaced, proc, pid), 60, what="healthy again", interval=0.01)
                restarts.append(time.perf_counter() - t0)
            return live, stages(proc, marks), restarts, 0.0
        finally:
            proc.stop()


def prom_yml(listen: str, jobs: list[str]) -> str:
    configs = [{"job_name": "prometheus", "static_configs": [{"targets": [listen]}]}]
    configs += [{"job_name": j, "static_configs": [{"targets": ["127.0.0.1:1"]}]} for j in jobs]
    return yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": configs})


def bare_rounds(rounds: int) -> tuple[list[float], float, list[float]]:
    """The bare script: write the file, SIGHUP, poll. Also Prometheus start -> ready
    (median of a few starts: the baseline for ampd's restart of a killed Prometheus) and
    the reload alone (SIGHUP until its metrics say it took)."""
    port = free_port()
    listen = f"127.0.0.1:{port}"
    starts = []
    for _ in range(STARTS):
        t0 = time.perf_counter()
        with Prometheus(prom_yml(listen, []), mode="agent", port=port):
            starts.append(time.perf_counter() - t0)
    started = statistics.median(starts)
    with Prometheus(prom_yml(listen, []), mode="agent", port=port) as p:
        live: list[float] = []
        reloads: list[float] = []
        for i in range(rounds):
            t0 = time.perf_counter()
            tmp = p.config_path.with_suffix(".tmp")
            tmp.write_text(prom_yml(listen, [f"b{i}"]))
            tmp.replace(p.config_path)
            r0 = time.perf_counter()
            p.reload()
            reloads.append(time.perf_counter() - r0)
            wait_for(partial(config_has, listen, f"b{i}"), 30, what="config live", interval=0.002)
            live.append(time.perf_counter() - t0)
            time.sleep(0.3)
    return live, started, reloads


def timed(fn: Callable[[], object], n: int = 20) -> float:
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t0)
    return statistics.median(xs)


def _more(got: list[float], seen: int) -> bool:
    return len(got) > seen


def _swap(d: str, i: int) -> None:
    Path(d, "s.tmp").write_text(str(i))
    Path(d, "s.tmp").replace(Path(d, "state.yml"))


def inotify_latency(n: int = 10) -> float:
    """Median time from a rename into a watched directory to ampd.gateways.inotify
    reporting it (5 ms settle included)."""
    from ampd.gateways.inotify import watch  # noqa: PLC0415 - bench-only import

    async def run(d: str) -> list[float]:
        stop = asyncio.Event()
        lat: list[float] = []
        t0 = [0.0]

        async def consume() -> None:
            async for _ in watch([Path(d)], stop):
                lat.append(time.perf_counter() - t0[0])
                if len(lat) >= n:
                    stop.set()

        task = asyncio.create_task(consume())
        for i in range(n):
            await asyncio.sleep(0.2)
            t0[0] = time.perf_counter()
            _swap(d, i)
        await asyncio.wait_for(task, 10)
        return lat

    with tempfile.TemporaryDirectory() as d:
        return statistics.median(asyncio.run(run(d)))


def component_times() -> dict[str, float]:
    from ampd.local.render.context import RenderContext  # noqa: PLC0415 - bench-only imports
    from ampd.local.render.files import render_all  # noqa: PLC0415
    from ampd.spec.load import load_spec  # noqa: PLC0415

    text = yaml.safe_dump(base_state(19090, 19795, jobs=[{"job": "a", "targets": ["h:1"]}]))
    spec = load_spec(text, "/etc/ampd/state.yml").spec
    ctx = RenderContext("/etc/ampd/state.yml", "/var/lib/ampd")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "prometheus.yml")
        path.write_bytes(next(r.data for r in render_all(spec, ctx) if r.name == path.name))
        argv = ["promtool", "check", "config", "--agent", str(path)]
        promtool = timed(lambda: subprocess.run(argv, capture_output=True, check=True), 10)
    return {
        "ampd.gateways.inotify (asyncio reader, 5 ms settle)": inotify_latency(),
        "load_spec (YAML + pydantic + checks)": timed(
            lambda: load_spec(text, "/etc/ampd/state.yml")
        ),
        "render_all": timed(lambda: render_all(spec, ctx)),
        "promtool check config (only before a start or restart, not on a reload)": promtool,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_converge")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    bare, prom_start, reloads = bare_rounds(args.rounds)
    live, st, restarts, _ = ampd_rounds(args.rounds, args.kills)
    comps = component_times()
    p50, p95, b50, b95 = statistics.median(live), q95(live), statistics.median(bare), q95(bare)
    verdict = (
        "met"
        if p95 * 1000 <= GOAL_P95_MS and p95 / b95 <= GOAL_RATIO
        else f"**missed** (p95 {ms(p95)}, {p95 / b95:.0f}x bare)"
    )
    r50 = statistics.median(restarts)
    restart_verdict = (
        "met" if r50 / prom_start <= GOAL_RESTART_RATIO else f"**missed** ({r50 / prom_start:.1f}x)"
    )
    urllib.request.urlcleanup()
    md = "\n".join(
        [
            "## Edit -> config live (`bench/bench_converge.py`)",
            "",
            f"{args.rounds} edits each way, one at a time (0.3 s apart). ampd: write "
            "state.yml, poll the real Prometheus' `/api/v1/status/config` until the new job "
            "is there (supervisor runtime, agent mode). Bare: write prometheus.yml (temp + "
            "rename), SIGHUP (until its metrics say the reload took), poll the same way, "
            "against its own Prometheus.",
            "",
            environment(),
            "",
            "| measure | p50 | p95 | max | bare p50 | bare p95 | ratio p50 | ratio p95 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            f"| edit -> config live | {ms(p50)} | {ms(p95)} | {ms(max(live))} | {ms(b50)} "
            f"| {ms(b95)} | {p50 / b50:.1f}x | {p95 / b95:.1f}x |",
            f"| kill -9 Prometheus -> Healthy again ({len(restarts)} kills, each after "
            f"{STABLE_AFTER:.0f} s up; bare: Prometheus start -> ready, median of {STARTS}) "
            f"| {ms(r50)} | - | {ms(max(restarts))} "
            f"| {ms(prom_start)} | - | {r50 / prom_start:.1f}x | - |",
            "",
            f"Goal p95 <= {GOAL_P95_MS:.0f} ms and <= {GOAL_RATIO:.0f}x bare: {verdict}.",
            f"Goal kill -9 -> Healthy p50 <= {GOAL_RESTART_RATIO:.0f}x Prometheus' own start -> "
            f"ready, in the same run: {restart_verdict}.",
            "",
            "Where ampd's time goes, per edit (from its debug log; medians):",
            "",
            "| stage | median | max |",
            "|---|---:|---:|",
            *[f"| {k} | {ms(statistics.median(v))} | {ms(max(v))} |" for k, v in st.items() if v],
            f"| (bare SIGHUP reload alone, until its metrics say it took) "
            f"| {ms(statistics.median(reloads))} | {ms(max(reloads))} |",
            "",
            "Each step timed alone (medians):",
            "",
            "| step | median |",
            "|---|---:|",
            *[f"| {k} | {v * 1000:.1f} ms |" for k, v in comps.items()],
        ]
    )
    print(md)
    if not args.no_doc:
        write_section("converge", md)


if __name__ == "__main__":
    main()
