"""Many hosts creating the same workspace at once: the fleet test and benchmark's worker.

``python -m tests.harness.aws_fleet --endpoint URL --dir D --creators N`` runs N
reconcilers on threads (each with its own ampd.json, as separate hosts have) and prints
one JSON line: the workspace id each one ended up with and how long it took.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from ampd.aws.gateway.client import make_gateway
from ampd.aws.side.side import AwsSide
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass


def fleet_spec(stack: str = "fleet", alias: str = "fleet-metrics") -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": stack,
            "aws": {"region": "eu-west-1"},
            "workspace": {"alias": alias, "tags": {"team": "platform"}},
        }
    )


def run_creator(store_path: Path, deadline: float) -> tuple[str | None, float, int]:
    """One host's ``ampd apply --once`` loop: (workspace id, seconds, passes)."""
    started = time.monotonic()
    rec = AwsSide(make_gateway, Store(store_path))
    spec = fleet_spec()
    passes = 0
    while time.monotonic() < deadline:
        passes += 1
        result = aws_pass(rec, spec, apply=True, force_read=passes > 1)
        if result.workspace is not None and all(o.ok for o in result.outcomes):
            return result.workspace.id, time.monotonic() - started, passes
        time.sleep(min(0.2 * passes, 1.0))
    return None, time.monotonic() - started, passes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--creators", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    os.environ.update(
        AWS_ENDPOINT_URL=args.endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="eu-west-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    import structlog  # noqa: PLC0415 (configured only for this worker)

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    deadline = time.monotonic() + args.timeout
    results: list[tuple[str | None, float, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(args.creators)

    def one(i: int) -> None:
        start.wait()
        r = run_creator(Path(args.dir) / f"host-{os.getpid()}-{i}.json", deadline)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.creators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = {
        "ids": [r[0] for r in results],
        "seconds": [round(r[1], 4) for r in results],
        "passes": [r[2] for r in results],
    }
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
