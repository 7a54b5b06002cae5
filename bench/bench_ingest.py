"""The ingest estimate of ``ampd plan`` against the rate the real Prometheus then writes.

Two targets, each alone behind one scrape job ``app`` (every ``--interval`` s): (a) the
demo app (tests/harness/sample_app.py), (b) the synthetic app with one high-cardinality
label (tests/harness/cardinality_app.py, ``--series`` series). For each: the whole stack
on loopback (AWS emulator, IMDS stand-in, SigV4-verifying data plane, receiving
Prometheus); the state file written; ``ampd plan --json`` taken before the daemon starts
(``ingest.total.after`` and the job's own figure); then ``ampd run`` with its agent-mode
Prometheus and signing proxy, until the app's samples reach the receiver, a settle, and
``ampd plan --json`` once more while it runs. Measured over a window of whole scrape
intervals:

- the managed Prometheus' own ``prometheus_remote_storage_samples_total`` (samples sent)
  plus ``prometheus_remote_storage_samples_pending`` (read from the WAL, not sent yet) at
  each end of the window, so a batch waiting for its send deadline at either end does
  not count as a rate change;
- the cross-check: the samples the receiver holds per job with timestamps in the same
  window (``count_over_time``), which is what the workspace would bill.

The total of what Prometheus writes includes the jobs ampd always adds (``prometheus``,
its own metrics, and ``ampd``); the per-job rows say which part the estimate covers.

    python -m bench.bench_ingest [--interval 5] [--window 120] [--series 5000]
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import math
import pwd
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.report import environment, write_section
from tests.harness.cardinality_app import CardinalityApp
from tests.harness.stack import Stack
from tests.harness.wait import wait_for

GOAL_PCT = 10.0
BUILTIN_INTERVAL = 15  # the example state's global scrape_interval: jobs prometheus and ampd
SENT = "prometheus_remote_storage_samples_total"
PENDING = "prometheus_remote_storage_samples_pending"
TROUBLE = (
    "prometheus_remote_storage_samples_failed_total",
    "prometheus_remote_storage_samples_retried_total",
    "prometheus_remote_storage_samples_dropped_total",
)
JOB = "app"


@dataclass(frozen=True)
class Estimate:
    """What ``ampd plan --json`` said: samples/s in total and per job (None: no figure)."""

    total: float | None
    jobs: dict[str, float | None]
    series: dict[str, int | None]
    unreadable: dict[str, list[str]]
    modeled: dict[str, list[str]] = field(default_factory=dict)  # estimated without a scrape


@dataclass
class Case:
    name: str
    served: str
    before: Estimate
    running: Estimate | None = None
    window_s: float = 0.0
    counter_rate: float = 0.0  # samples/s, all jobs, from the managed Prometheus' counters
    trouble: dict[str, float] = field(default_factory=dict)  # failed/retried/dropped in window
    receiver: dict[str, float] = field(default_factory=dict)  # samples/s per job, receiver
    series: dict[str, int] = field(default_factory=dict)  # series per job at the receiver


def users_exist() -> bool:
    """The package's per-process users (not on a development machine)."""
    try:
        pwd.getpwnam("ampd-prometheus")
    except KeyError:
        return False
    return True


def read_estimate(stack: Stack) -> Estimate:
    """``ampd plan --json`` (exit 0 in sync, 2 pending) and its ``ingest`` object."""
    out = stack.ampd.ampd("plan", "--json")
    if out.returncode not in (0, 2):
        raise RuntimeError(f"ampd plan --json: exit {out.returncode}\n{out.stderr[-2000:]}")
    ingest = json.loads(out.stdout).get("ingest")
    if not isinstance(ingest, dict):  # an ampd without the estimate: the table says so
        return Estimate(None, {}, {}, {"*": ["ampd plan --json carries no ingest object"]})
    after = (ingest.get("total") or {}).get("after")
    jobs: dict[str, float | None] = {}
    series: dict[str, int | None] = {}
    unreadable: dict[str, list[str]] = {}
    modeled: dict[str, list[str]] = {}
    for j in ingest.get("jobs", []):
        fig = j.get("after")
        jobs[j["job"]] = None if fig is None else float(fig["samples_per_second"])
        series[j["job"]] = None if fig is None else int(fig["series"])
        if j.get("unreadable"):
            unreadable[j["job"]] = [str(u) for u in j["unreadable"]]
        if j.get("estimated_without_scrape"):
            modeled[j["job"]] = [str(u) for u in j["estimated_without_scrape"]]
    total = None if after is None else float(after["samples_per_second"])
    return Estimate(total, jobs, series, unreadable, modeled)


def own_metrics(listen: str) -> dict[str, float]:
    """Every series of the managed Prometheus' /metrics, summed per metric name: one read,
    so the counters come from one instant."""
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def receiver_newest(stack: Stack) -> float:
    """The oldest of the jobs' newest ``up`` sample at the receiver (unix seconds)."""
    res = stack.receiver.query("min(timestamp(up))")
    return float(res[0]["value"][1]) if res else 0.0


def received_per_job(
    stack: Stack, end: float, window_s: int
) -> tuple[dict[str, float], dict[str, int]]:
    """Samples/s and series per job at the receiver, by the samples' own timestamps in
    the window ending at ``end`` (the raw samples of a range selector, counted here)."""
    expr = f'{{__name__=~".+"}}[{window_s}s]'
    data = stack.receiver.api("query", {"query": expr, "time": f"{end:.3f}"})
    samples: dict[str, int] = {}
    series: dict[str, int] = {}
    for r in data["result"]:
        job = r["metric"].get("job", "?")
        samples[job] = samples.get(job, 0) + len(r["values"])
        series[job] = series.get(job, 0) + 1
    return {j: n / window_s for j, n in samples.items()}, series


def served_series(target: str) -> int:
    """The series one scrape of the target returns (a Prometheus-style parse)."""
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(len(f.samples) for f in text_string_to_metric_families(text))


def app_flowing(stack: Stack) -> bool:
    return bool(stack.receiver.query(f'up{{job="{JOB}"}} == 1'))


def run_case(
    name: str, what: str, target: str | None, args: argparse.Namespace, workdir: Path
) -> Case:
    with Stack(workdir) as stack:
        target = target or stack.app.target
        served = f"{served_series(target):,}{what}"
        state = stack.state()
        if not users_exist():  # the children run as the bench's own user: let it sign
            state["proxy"]["allowed_users"] = [getpass.getuser()]
        prom = state["prometheus"]
        prom["scrape_interval"] = f"{BUILTIN_INTERVAL}s"
        prom["scrape_configs"] = [
            {"job": JOB, "targets": [target], "interval": f"{args.interval}s"}
        ]
        prom["remote_write"]["queue"] = {"capacity": 10000, "max_samples_per_send": 2000}
        stack.ampd.write_state(state)
        case = Case(name, served, read_estimate(stack))
        stack.ampd.start()
        try:
            wait_for(
                partial(app_flowing, stack),
                240,
                what="the app's samples at the receiver",
                interval=0.5,
                detail=lambda: json.dumps(stack.ampd.status(), indent=1)[:3000],
            )
            case.running = read_estimate(stack)
            time.sleep(args.settle)  # past start-up: Prometheus' own series settle
            listen = prom["listen"]
            m0, t0, w0 = own_metrics(listen), time.monotonic(), time.time()
            time.sleep(args.window)  # the measurement window itself
            m1, t1, w1 = own_metrics(listen), time.monotonic(), time.time()
            case.window_s = t1 - t0
            before, after = m0.get(SENT, 0.0) + m0.get(PENDING, 0.0), m1[SENT] + m1[PENDING]
            case.counter_rate = (after - before) / case.window_s
            case.trouble = {n: m1.get(n, 0.0) - m0.get(n, 0.0) for n in TROUBLE}
            # every job's samples up to the window's end have reached the receiver
            wait_for(
                lambda: receiver_newest(stack) > w1,
                60,
                what="the receiver past the window's end",
                interval=0.5,
            )
            case.receiver, case.series = received_per_job(stack, w1, round(w1 - w0))
        finally:
            stack.ampd.stop()
    return case


def pct(estimate: float | None, actual: float) -> str:
    if estimate is None:
        return "no estimate"
    if actual == 0:
        return "-"
    return f"{(estimate - actual) / actual * 100:+.1f} %"


def within(estimate: float | None, actual: float) -> bool:
    return estimate is not None and actual > 0 and abs(estimate - actual) / actual * 100 <= GOAL_PCT


def count(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fig(x: float | None) -> str:
    return "-" if x is None else f"{x:,.2f}"


def render(cases: list[Case], args: argparse.Namespace) -> str:
    rows, jobs_rows, notes = [], [], []
    for c in cases:
        # what `ampd plan` says on a running host, before an edit is applied: the jobs
        # ampd adds (prometheus, ampd) are read from the processes that serve them
        est = c.running.total if c.running is not None else None
        got = sum(c.receiver.values())
        ok = within(est, c.counter_rate)
        rows.append(
            f"| {c.name} | {c.served} | {fig(est)} | {fig(c.counter_rate)} "
            f"| {pct(est, c.counter_rate)} | {fig(got)} | {pct(est, got)} "
            f"| {'met' if ok else '**missed**'} | {fig(c.before.total)} "
            f"({pct(c.before.total, c.counter_rate)}) |"
        )
        for job in sorted(set(c.receiver) | set(c.before.jobs)):
            actual = c.receiver.get(job, 0.0)
            b, r = c.before.jobs.get(job), c.running.jobs.get(job) if c.running else None
            jobs_rows.append(
                f"| {c.name} | {job} | {count(c.before.series.get(job))} "
                f"| {count(c.series.get(job))} | {fig(b)} | {fig(r)} "
                f"| {fig(actual)} | {pct(b, actual)} | {pct(r, actual)} |"
            )
        missing = {j: r for j, r in c.receiver.items() if c.before.jobs.get(j) is None}
        if missing and got > 0:
            share = sum(missing.values())
            notes.append(
                f"- {c.name}: jobs the estimate has no figure for "
                f"({', '.join(f'`{j}`' for j in sorted(missing))}) sent {share:,.2f} "
                f"samples/s, {share / got * 100:.1f} % of what the receiver got."
            )
        for job, why in c.before.unreadable.items():
            notes.append(
                f"- {c.name}: before the first start, job {job} unreadable (its process "
                f"is not running yet, and no model: it counts 0, named): {'; '.join(why)}"
            )
        for job, where in c.before.modeled.items():
            notes.append(
                f"- {c.name}: before the first start, job {job} estimated without a "
                f"scrape (its process is not running yet; a model): {'; '.join(where)}"
            )
        bad = {k: v for k, v in c.trouble.items() if v}
        if bad:
            notes.append(f"- {c.name}: in the window, {bad} (not ingested, or sent twice)")
    verdict = all(within(c.running.total if c.running else None, c.counter_rate) for c in cases)
    return "\n".join(
        [
            "## Ingest estimate against the measured rate (`bench/bench_ingest.py`)",
            "",
            f"One scrape job `{JOB}` on one target, every {args.interval} s (the jobs ampd "
            f"always adds, `prometheus` and `ampd`, every {BUILTIN_INTERVAL} s): the "
            "estimate is `ingest.total.after.samples_per_second` of `ampd plan --json` on "
            "the running host (what a plan says before an edit is applied; the jobs ampd "
            "adds are read from the processes that serve them); the last column is the "
            "plan before the first start, when those processes do not run yet and their "
            "jobs are estimated without a scrape, from a model (Prometheus' own series "
            "per Debian release, ampd's registry), and named as such. The real `ampd run` "
            "(agent-mode "
            "Prometheus, signing proxy, SigV4-verifying data plane, receiving Prometheus): "
            f"after the first samples arrive and {args.settle:.0f} s more, a window of "
            f"{args.window:.0f} s (whole scrape intervals of every job). Measured: the rate "
            f"of the managed Prometheus' `{SENT}` (+ `{PENDING}` at both ends); "
            "cross-check: the samples the receiver holds, by their own timestamps in the "
            "window. Difference = (estimate - measured) / measured.",
            "",
            environment(),
            "",
            "| target | series served | estimate (samples/s) | measured: remote-write "
            "counters | difference | measured: receiver | difference | goal +-10 % "
            "| estimate before the first start |",
            "|---|---|---:|---:|---:|---:|---:|---|---:|",
            *rows,
            "",
            f"Goal: the estimate within +-{GOAL_PCT:.0f} % of the measured rate for both: "
            f"{'met' if verdict else '**missed**'}.",
            "",
            "Per job (the receiver's samples by job; estimates before the start and while "
            "the daemon runs):",
            "",
            "| target | job | series: estimate | series: receiver | estimate before "
            "| estimate running | receiver (samples/s) | difference before "
            "| difference running |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
            *jobs_rows,
            *(["", *notes] if notes else []),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ingest")
    parser.add_argument("--interval", type=int, default=5, help="the app job's, seconds")
    parser.add_argument("--window", type=float, default=120.0, help="seconds")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds after first flow")
    parser.add_argument("--series", type=int, default=5000, help="the synthetic app's")
    parser.add_argument("--only", choices=("demo", "synthetic"), default=None)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    whole = math.lcm(args.interval, BUILTIN_INTERVAL)
    if args.window % whole:
        parser.error(f"--window must be a whole number of {whole} s (every job's interval)")
    cases = []
    with tempfile.TemporaryDirectory(prefix="ampd-bench-ingest-") as d:
        if args.only in (None, "demo"):
            cases.append(run_case("demo app", " (3 families)", None, args, Path(d, "demo")))
        if args.only in (None, "synthetic"):
            with contextlib.ExitStack() as es:
                app = es.enter_context(CardinalityApp(args.series))
                what = f" ({app.users:,} from one `user` label)"
                cases.append(run_case("synthetic app", what, app.target, args, Path(d, "syn")))
    md = render(cases, args)
    print(md)
    if not args.no_doc and args.only is None:
        write_section("ingest", md)


if __name__ == "__main__":
    main()
