"""Samples lost through reloads, an upstream outage, throttling, a proxy restart and kill -9
of Prometheus.

The real ``ampd run`` (AWS emulator, IMDS stand-in, agent-mode Prometheus, built-in
signing proxy) writes a counter app scraped every 1 s into the SigV4-verifying data-plane
emulator, backed by a real Prometheus receiver. The app's ``ampd_demo_scrapes_total``
reads k at its k-th scrape, so each phase expects exactly the values it handed out and
every value missing at the receiver is a lost sample:

  (a) reloads   state.yml edits touching only scrape jobs, one after another
  (b) outage    the data plane answers 503, then refuses connections
  (c) 429       the data plane answers 429 with Retry-After
  (d) proxy     kill -9 of the signing proxy; ampd restarts it
  (e) prometheus kill -9 of Prometheus, a few times, each after it ran a while (a crash,
                not a crash loop: restarted at once); ampd restarts it

    python -m bench.bench_loss                 # the documented run (about 5 min)
    python -m bench.bench_loss --quick         # shorter phases, not written to docs
"""

from __future__ import annotations

import argparse
import getpass
import os
import pwd
import signal
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ampd.gateways.promqueue import QueueSnapshot, read_queues, wait_drained
from bench.report import environment, write_section
from tests.harness.loss import Phase, failed_scrapes, received_values, runs
from tests.harness.stack import Stack
from tests.harness.wait import wait_for


@dataclass(frozen=True)
class Lengths:
    reloads: int = 20
    outage_s: float = 120.0
    throttle_s: float = 60.0
    retry_after_s: int = 5
    settle_s: float = 10.0
    prom_kills: int = 5


@dataclass
class Run:
    stack: Stack
    state: dict[str, Any]
    listen: str  # the agent Prometheus
    phases: list[Phase] = field(default_factory=list)
    queues: list[tuple[QueueSnapshot | None, QueueSnapshot | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    walls: list[tuple[float, float]] = field(default_factory=list)

    @property
    def scrapes(self) -> int:
        return self.stack.app.scrapes

    def phase(self, name: str, body: Callable[[], str | None]) -> None:
        q0, first, t0 = read_queues(self.listen), self.scrapes, time.monotonic()
        wall0 = time.time()
        note = body()
        self.walls.append((wall0, time.time()))
        self.phases.append(Phase(name, first, self.scrapes, time.monotonic() - t0))
        self.queues.append((q0, read_queues(self.listen)))
        self.notes.append(note or "")
        print(f"phase {name}: scrapes {first + 1}..{self.scrapes} {note or ''}", flush=True)


def hold(seconds: float) -> None:
    """A timed phase: the fault stays on this long."""
    time.sleep(seconds)


def pids_with(marker: str, word: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmd and word in cmd:
                out.append(int(d.name))
    return out


def reloads(run: Run, n: int) -> Callable[[], str]:
    def body() -> str:
        app_job = run.state["prometheus"]["scrape_configs"][0]
        prom_pids = set(pids_with(str(run.stack.ampd.state_dir), "prometheus.yml"))
        for i in range(n):
            extra = [{"job": f"extra{i}", "targets": ["127.0.0.1:1"]}] if i % 2 == 0 else []
            run.state["prometheus"]["scrape_configs"] = [app_job, *extra]
            run.stack.ampd.write_state(run.state)
            run.stack.ampd.wait_spec(30)
            hold(1.0)
        after = set(pids_with(str(run.stack.ampd.state_dir), "prometheus.yml"))
        return f"{n} edits; Prometheus pid {'kept' if after == prom_pids else 'CHANGED'}"

    return body


def outage(run: Run, seconds: float) -> Callable[[], str]:
    dp = run.stack.dataplane
    assert dp is not None

    def body() -> str:
        dp.unavailable(503)
        hold(seconds / 2)
        dp.refuse_connections()
        hold(seconds / 2)
        dp.accept_connections()
        dp.healthy()
        return f"{seconds / 2:.0f} s of 503, then {seconds / 2:.0f} s refused"

    return body


def throttle(run: Run, seconds: float, retry_after: int) -> Callable[[], str]:
    dp = run.stack.dataplane
    assert dp is not None

    def body() -> str:
        before = dp.faulted
        dp.throttle(retry_after=retry_after)
        hold(seconds)
        dp.healthy()
        return f"{dp.faulted - before} requests answered 429 (Retry-After: {retry_after})"

    return body


def proxy_restart(run: Run, settle: float) -> Callable[[], str]:
    def body() -> str:
        marker = str(run.stack.ampd.state_dir)
        old = pids_with(marker, "proxy.json")
        for pid in old:
            os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        new = wait_for(
            lambda: [p for p in pids_with(marker, "proxy.json") if p not in old],
            60,
            what="a new proxy",
            interval=0.05,
        )
        back = time.monotonic() - t0
        hold(settle)
        return f"proxy pid {old} -> {new}, back in {back:.1f} s"

    return body


STABLE_AFTER = 10.0  # ampd.gateways.supervisor: a run this long ends a crash loop


def prometheus_kills(run: Run, kills: int) -> Callable[[], str]:
    def body() -> str:
        marker = str(run.stack.ampd.state_dir)
        backs: list[float] = []
        gaps: list[float] = []
        for _ in range(kills):
            hold(STABLE_AFTER + 0.5)
            old = pids_with(marker, "prometheus.yml")
            scraped = run.scrapes
            for pid in old:
                os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            wait_for(partial(new_pids, marker, old), 60, what="a new prometheus", interval=0.01)
            wait_for(lambda: ready(run.listen), 60, what="it is ready", interval=0.01)
            backs.append(time.monotonic() - t0)
            wait_for(partial(scraped_since, run, scraped), 60, what="a scrape again", interval=0.01)
            gaps.append(time.monotonic() - t0)
        hold(STABLE_AFTER)
        return (
            f"{kills} kills; ready again in {min(backs):.2f}-{max(backs):.2f} s; "
            f"first scrape {min(gaps):.1f}-{max(gaps):.1f} s after the kill"
        )

    return body


def scraped_since(run: Run, count: int) -> bool:
    return run.scrapes > count


def new_pids(marker: str, old: list[int]) -> list[int]:
    return [p for p in pids_with(marker, "prometheus.yml") if p not in old]


def ready(listen: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{listen}/-/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def users_exist() -> bool:
    """The package's per-process users (not on a development machine)."""
    try:
        pwd.getpwnam("ampd-prometheus")
    except KeyError:
        return False
    return True


def counters(pair: tuple[QueueSnapshot | None, QueueSnapshot | None]) -> str:
    a, b = pair
    if a is None or b is None or not a.queues or not b.queues:
        return "-"
    qa, qb = a.queues[0], b.queues[0]
    deltas = (qb.retried - qa.retried, qb.failed - qa.failed, qb.dropped - qa.dropped)
    if min(deltas) < 0:
        return "- (counters restarted with Prometheus)"
    return " / ".join(str(d) for d in deltas)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_loss")
    parser.add_argument("--quick", action="store_true", help="short phases; docs untouched")
    parser.add_argument("--reloads", type=int)
    parser.add_argument("--outage", type=float, help="seconds")
    parser.add_argument("--throttle", type=float, help="seconds")
    parser.add_argument("--prom-kills", type=int, help="kill -9 of Prometheus, how many")
    parser.add_argument("--only-kills", action="store_true", help="phase (e) alone; no docs")
    args = parser.parse_args(argv)
    lengths = Lengths(5, 20.0, 10.0, 2, 5.0, 2) if args.quick else Lengths()
    lengths = Lengths(
        args.reloads if args.reloads is not None else lengths.reloads,
        args.outage if args.outage is not None else lengths.outage_s,
        args.throttle if args.throttle is not None else lengths.throttle_s,
        lengths.retry_after_s,
        lengths.settle_s,
        args.prom_kills if args.prom_kills is not None else lengths.prom_kills,
    )
    with tempfile.TemporaryDirectory() as d, Stack(Path(d)) as stack:
        state = stack.state()
        if not users_exist():  # the children run as the bench's own user: let it sign
            state["proxy"]["allowed_users"] = [getpass.getuser()]
        stack.ampd.write_state(state)
        stack.ampd.start()
        run = Run(stack, state, state["prometheus"]["listen"])
        selector = 'job="app"'
        window = 3600
        wait_for(
            lambda: received_values(stack.receiver, selector, window),
            120,
            what="the app's samples at the receiver",
            interval=0.5,
        )
        if not args.only_kills:
            run.phase("(a) reloads", reloads(run, lengths.reloads))
            run.phase("(b) outage", outage(run, lengths.outage_s))
            run.phase("(c) 429", throttle(run, lengths.throttle_s, lengths.retry_after_s))
            run.phase("(d) proxy restart", proxy_restart(run, lengths.settle_s))
        run.phase("(e) kill -9 Prometheus", prometheus_kills(run, lengths.prom_kills))
        drained = wait_drained(run.listen, 300.0)
        last = run.phases[-1].last
        wait_for(
            lambda: max(received_values(stack.receiver, selector, window), default=0) > last,
            120,
            what="a scrape after the last phase",
            interval=0.5,
        )
        values = received_values(stack.receiver, selector, window)
        at_source = [failed_scrapes(stack.receiver, selector, a, b) for a, b in run.walls]
        stack.ampd.stop()
    rows = []
    for p, pair, note, src in zip(run.phases, run.queues, run.notes, at_source, strict=True):
        missing = p.missing(values)
        rows.append(
            f"| {p.name} | {p.seconds:.0f} s | {note} | {p.expected} | {p.received(values)} "
            f"| **{p.lost(values)}** | {runs(missing) or '-'} | {src} | {counters(pair)} |"
        )
    md = "\n".join(
        [
            "## Samples lost (`bench/bench_loss.py`)",
            "",
            "The real `ampd run` (agent-mode Prometheus, built-in signing proxy) writes a "
            "counter app scraped every 1 s into the SigV4-verifying data-plane emulator and "
            "its Prometheus receiver. Expected = scrapes the app served during the phase "
            "(its counter reads k at scrape k); received = those values found at the "
            "receiver after the queue drained; lost = expected - received. Goal: 0 in "
            "every phase.",
            "",
            environment(),
            "",
            "| phase | length | what happened | expected | received | lost "
            "| lost scrapes (counter values) | of which failed at the source (up=0) "
            "| Prometheus retried / failed / dropped |",
            "|---|---:|---|---:|---:|---:|---|---:|---|",
            *rows,
            "",
            f"Queue drained after the last phase: {drained.drained} in "
            f"{drained.waited_s:.1f} s. Total lost: "
            f"**{sum(p.lost(values) for p in run.phases)}** of "
            f"{sum(p.expected for p in run.phases)}.",
        ]
    )
    print(md)
    if not args.quick and not args.only_kills and argv is None:
        write_section("loss", md)


if __name__ == "__main__":
    main()
