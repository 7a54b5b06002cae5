"""Every benchmark, one after the other, each in its own process, each rewriting its own
section of docs/benchmarks.md; then a summary section saying what ran and when.

    python -m bench.all                      # the documented run (about 25 min)
    python -m bench.all --quick              # short windows, docs untouched
    python -m bench.all --only loss idle     # a subset
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.report import REPO, environment, write_section

# name -> (module, documented arguments, quick arguments)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "converge": ("bench.bench_converge", ["--rounds", "20"], ["--rounds", "5", "--no-doc"]),
    "start": ("bench.bench_start", ["--rounds", "10"], ["--rounds", "3", "--no-doc"]),
    "idle": ("bench.bench_idle", ["--window", "300"], ["--window", "20", "--no-doc"]),
    "aws_calls": ("bench.bench_aws", ["--window", "60"], ["--window", "20", "--no-doc"]),
    "loss": ("bench.bench_loss", [], ["--quick"]),
    "proxy": ("bench.bench_proxy", [], []),
    "proxy_flood": ("bench.bench_proxy", ["--flood", "--rounds", "5"], []),
    "fleet_workspace": ("bench.bench_fleet_workspace", [], []),
    "ingest": (
        "bench.bench_ingest",
        ["--window", "120"],
        ["--window", "30", "--settle", "10", "--no-doc"],
    ),
}
SLOW_IN_QUICK = ("proxy", "proxy_flood", "fleet_workspace")  # no short mode: left out of --quick


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=None)
    args = parser.parse_args(argv)
    names = args.only or [n for n in BENCHES if not (args.quick and n in SLOW_IN_QUICK)]
    rows = []
    failed = 0
    for name in names:
        module, full, quick = BENCHES[name]
        argv_ = [sys.executable, "-m", module, *(quick if args.quick else full)]
        print(f"== {name}: {' '.join(argv_[1:])}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(argv_, cwd=REPO, check=False).returncode
        took = time.monotonic() - t0
        failed += rc != 0
        result = "ok" if rc == 0 else f"exit {rc}"
        rows.append(f"| {name} | `python -m {module}` | {took:.0f} s | {result} |")
    if not args.quick:
        write_section(
            "run",
            "\n".join(
                [
                    "## The run (`python -m bench.all`)",
                    "",
                    environment(),
                    "",
                    "| section | command | took | result |",
                    "|---|---|---:|---|",
                    *rows,
                ]
            ),
        )
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
