"""1,000 hosts boot at once and each runs its first AWS pass: exactly one workspace.

Runs the AWS emulator (moto server mode + the test layer) on loopback and PROCESSES
worker processes with THREADS reconcilers each (every reconciler has its own ampd.json,
like separate hosts). Bounded by a deadline; writes its section of docs/benchmarks.md.

    .venv/bin/python -m bench.bench_fleet_workspace [--creators 1000] [--processes 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.report import write_section
from tests.harness.aws_emulator import AwsEmulator

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creators", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    per_process = max(1, args.creators // args.processes)
    total = per_process * args.processes
    with AwsEmulator() as em, tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.harness.aws_fleet",
                    "--endpoint",
                    em.endpoint,
                    "--dir",
                    tmp,
                    "--creators",
                    str(per_process),
                    "--timeout",
                    str(args.timeout),
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(args.processes)
        ]
        ids: list[str | None] = []
        seconds: list[float] = []
        passes: list[int] = []
        for p in procs:
            out, _ = p.communicate(timeout=args.timeout + 60)
            doc = json.loads(out.strip().splitlines()[-1])
            ids += doc["ids"]
            seconds += doc["seconds"]
            passes += doc["passes"]
        wall = time.monotonic() - started
        workspaces = em.workspace_ids()
        ops = Counter(r.operation for r in em.requests)
    converged = sum(1 for i in ids if i is not None)
    ok = len(workspaces) == 1 and converged == total and len({i for i in ids if i}) == 1
    q = statistics.quantiles(seconds, n=100) if len(seconds) >= 2 else [0.0] * 99
    md = "\n".join(
        [
            "## Fleet workspace creation (`bench/bench_fleet_workspace.py`)",
            "",
            f"{total} concurrent creators ({args.processes} processes x {per_process} threads, "
            "each with its own ampd.json) run their first AWS pass against the emulator "
            "(moto server mode + clientToken idempotency) on loopback.",
            "",
            "| metric | value |",
            "|---|---|",
            f"| workspaces in the account afterwards | **{len(workspaces)}** |",
            f"| creators converged | {converged} / {total} |",
            f"| wall time | {wall:.1f} s |",
            f"| per creator p50 / p95 / max | {q[49]:.2f} / {q[94]:.2f} / {max(seconds):.2f} s |",
            f"| passes per creator (max) | {max(passes)} |",
            f"| CreateWorkspace calls | {ops['CreateWorkspace']} |",
            f"| ListWorkspaces calls | {ops['ListWorkspaces']} |",
            f"| result | {'PASS' if ok else 'FAIL'} |",
        ]
    )
    sys.stdout.write(md + "\n")
    if not args.no_write:
        write_section("fleet_workspace", md)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
