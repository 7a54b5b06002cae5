"""AWS calls per pass in steady state, counted by the AWS emulator: the real ``ampd run``
(the example state file: workspace, rule group, alert manager, IAM roles) converged,
then a window of resyncs with nothing to change, and a run of local edits (scrape jobs
only). Goal: 0 writes; at most 1 read per AWS resource per resync; 0 calls for a pass
that only concerns this host.

    python -m bench.bench_aws [--resync 10] [--window 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.report import environment, write_section
from tests.harness.stack import Stack
from tests.harness.wait import wait_for


def aws_resources(stack: Stack) -> list[str]:
    doc = stack.ampd.status() or {}
    return [
        f"{r['kind']}/{r['name']}" for r in doc.get("resources", []) if r["kind"].startswith("aws.")
    ]


def passes_since(stack: Stack, t: float) -> int:
    from datetime import datetime  # noqa: PLC0415 - one use

    n = 0
    for e in stack.ampd.events("reconcile.summary"):
        ts = datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00")).timestamp()
        n += ts >= t
    return n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_aws")
    parser.add_argument("--resync", type=int, default=10, help="aws.resync, seconds")
    parser.add_argument("--window", type=float, default=60.0, help="steady-state seconds")
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d, Stack(Path(d)) as stack:
        state = stack.state()
        state["aws"]["resync"] = f"{args.resync}s"
        stack.ampd.write_state(state)
        stack.ampd.start()
        stack.ampd.wait_healthy(180)
        time.sleep(args.resync + 2)  # one resync past convergence
        resources = aws_resources(stack)

        # steady state: resyncs only
        stack.aws.reset_requests()
        t0 = time.time()
        time.sleep(args.window)
        steady = list(stack.aws.requests)
        passes = passes_since(stack, t0)
        # one DescribeWorkspace per AWS read pass: count the resyncs that happened
        resyncs = max(1, sum(r.operation == "DescribeWorkspace" for r in steady))

        # local edits only: scrape jobs
        stack.aws.reset_requests()
        app_job = state["prometheus"]["scrape_configs"][0]
        t1 = time.time()
        for i in range(args.edits):
            state["prometheus"]["scrape_configs"] = [
                app_job,
                {"job": f"extra{i}", "targets": ["127.0.0.1:1"]},
            ]
            stack.ampd.write_state(state)
            stack.ampd.wait_spec(60)
            time.sleep(2.0)  # edits apart: an edit that made AWS reads would show each time
        local = [r for r in stack.aws.requests if r.at >= t1]
        local_s = time.time() - t1
        local_passes = passes_since(stack, t1)
        wait_for(stack.ampd.status, 5, what="ampd still healthy")
    writes = [r for r in steady if r.is_write]
    reads = [r for r in steady if not r.is_write]
    by_op = Counter(f"{r.service}:{r.operation}" for r in steady)
    per = len(reads) / (len(resources) * resyncs) if resources else float("nan")
    verdict_w = "met" if not writes else "**missed**"
    verdict_r = "met" if per <= 1.0 else "**missed**"
    # resyncs fall due during the edits too: what they read is not the edits' doing
    due = local_s / args.resync
    local_reads = sum(r.operation == "DescribeWorkspace" for r in local)
    verdict_l = (
        "met"
        if local_reads <= int(due) + 1 and not any(r.is_write for r in local)
        else "**missed**"
    )
    local_ops = Counter(f"{r.service}:{r.operation}" for r in local)
    md = "\n".join(
        [
            "## AWS calls in steady state (`bench/bench_aws.py`)",
            "",
            f"The real `ampd run` on the example state file against the AWS emulator "
            f"(moto + ampd's AMP layer), `aws.resync: {args.resync}s`, converged; then "
            f"{args.window:.0f} s with nothing to change ({passes} passes, {resyncs} AWS "
            f"resyncs), then {args.edits} edits of scrape jobs only ({local_passes} passes). "
            f"Baseline: the {len(resources)} AWS resources in the status "
            f"({', '.join(resources)}).",
            "",
            environment(),
            "",
            "| measure | value | per AWS resource per resync | goal |",
            "|---|---:|---:|---|",
            f"| writes while steady | {len(writes)} | - | 0: {verdict_w} |",
            f"| reads while steady | {len(reads)} | {per:.2f} | <= 1: {verdict_r} |",
            f"| AWS read passes during {args.edits} local-only edits ({local_s:.0f} s, "
            f"{due:.1f} resyncs due; {len(local)} calls) | {local_reads} | - "
            f"| no more than the resyncs due: {verdict_l} |",
            "",
            "Calls while steady, by operation: "
            + (", ".join(f"{op} {n}" for op, n in by_op.most_common()) or "none")
            + ".",
            "",
            "Calls during the local-only edits: "
            + (", ".join(f"{op} {n}" for op, n in local_ops.most_common()) or "none")
            + ".",
        ]
    )
    print(md)
    if not args.no_doc:
        write_section("aws_calls", md)


if __name__ == "__main__":
    main()
