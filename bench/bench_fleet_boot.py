"""1,000 hosts boot at once from one image, read their state from SSM and converge.

Runs the AWS emulator (moto server mode + the test layer) on loopback, puts the fleet's
state in SSM Parameter Store, and starts PROCESSES worker processes with THREADS hosts
each. Every host has its own identity (its own access key, so its own SigV4 signatures,
and its own instance id), its own state directory and ampd.json, and boots like ampd does:
instance facts from IMDSv2 (the identity document, from a stand-in per worker process: the
account and region, not a control-plane call), the state (``ssm:/fleet/prod/ampd``,
validated, cached), then AWS passes until the workspace is known and every change
succeeded.

- ``--mode manage``: every host's state is ``aws.mode: manage`` (the worst case: every
  host may create the workspace; the clientToken makes it one).
- ``--mode observe`` (the fleet pattern, docs/fleet.md): one manager creates the
  workspace; the hosts run ``aws.mode: observe`` and only read.

Reported: workspaces afterwards (must be 1), control-plane calls per host (AMP, IAM, STS
and SSM requests the emulator saw, over hosts; goal <= 2), SSM reads per host per hour in
steady state (hosts polling for an hour of simulated time with the real poll interval and
jitter, against the emulator), and the time until every host converged.

    .venv/bin/python -m bench.bench_fleet_boot [--hosts 1000] [--processes 20] [--mode observe]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import write_section
from tests.harness.aws_emulator import AwsEmulator

ROOT = Path(__file__).resolve().parent.parent
PARAMETER = "/fleet/prod/ampd"
REGION = "eu-west-1"
ALIAS = "fleet-metrics"


def fleet_state(mode: str, workspace_id: str | None = None) -> str:
    pinned = f", id: {workspace_id}" if workspace_id else ""
    return (
        "version: 1\n"
        "stack: fleet\n"
        f"aws: {{region: {REGION}, mode: {mode}}}\n"
        f"workspace: {{alias: {ALIAS}{pinned}, tags: {{team: platform}}}}\n"
        "prometheus:\n"
        "  enabled: false\n"
        "state_source: {poll_interval: 60s}\n"
    )


# -- one host ---------------------------------------------------------------------------------


class HostSession:
    """A host's own credentials over one shared boto3 session: every client this host
    makes signs with its own access key, while the service models are loaded once per
    process (a boto3 session per host would spend the machine on loading JSON)."""

    _lock = threading.Lock()

    def __init__(self, base: Any, access_key: str) -> None:
        self._base = base
        self._key = access_key
        self.region_name = REGION

    def client(self, service: str, **kwargs: Any) -> Any:
        with self._lock:  # boto3 sessions are not thread-safe; clients are
            return self._base.client(
                service,
                aws_access_key_id=self._key,
                aws_secret_access_key="testing",  # noqa: S106 (the emulator's fake credentials)
                **kwargs,
            )


_BASE: list[Any] = []


def _aws_side(store_path: Path, session: Any) -> Any:
    """This host's AWS side, signing with its own identity."""
    from ampd.aws.gateway.client import AwsReader  # noqa: PLC0415 (worker process only)
    from ampd.aws.side.side import AwsSide  # noqa: PLC0415
    from ampd.gateways.store import StoreView  # noqa: PLC0415

    def factory(region: str, endpoint: str | None) -> AwsReader:
        return AwsReader(region, endpoint, session=session)

    return AwsSide(factory, StoreView(store_path))


def _aws_pass(side: Any, spec: Any, facts: Any = None, *, refresh: bool) -> Any:
    """One applying pass, as ``ampd run`` makes it (``ampd.engine.side.run_side``)."""
    from ampd.aws.gateway.writer import AwsWriting  # noqa: PLC0415 (worker process only)
    from ampd.engine.facts import Facts  # noqa: PLC0415
    from ampd.engine.side import run_side  # noqa: PLC0415
    from ampd.gateways.store import Store  # noqa: PLC0415

    @dataclass(frozen=True)
    class BenchWriters:
        store: Store
        aws: AwsWriting

    if refresh:
        side.forget_reads()
    writers = BenchWriters(Store(side.store.path), AwsWriting())
    return run_side(side, spec, facts or Facts(), writers)


def boot_host(index: int, root: Path, deadline: float, metadata: dict[str, str]) -> dict[str, Any]:
    """One host's boot: instance facts (IMDSv2), state from SSM, then AWS passes until
    converged."""
    import boto3  # noqa: PLC0415

    from ampd.engine.facts import Facts  # noqa: PLC0415
    from ampd.gateways.statesource import SourceFetcher  # noqa: PLC0415
    from ampd.source.specfile import file_problems  # noqa: PLC0415
    from ampd.source.state import StateSource  # noqa: PLC0415

    started = time.monotonic()
    host = root / f"host-{os.getpid()}-{index}"
    host.mkdir(parents=True)
    with HostSession._lock:
        if not _BASE:
            _BASE.append(boto3.session.Session(region_name=REGION))
    session = HostSession(_BASE[0], f"AKIDHOST{os.getpid():06d}{index:04d}")
    instance_id = f"i-{os.getpid():08x}{index:09x}"
    (host / "instance-id").write_text(instance_id)
    # What the daemon's FactFinder reads from IMDSv2 (the identity document: account,
    # region, ...; link-local, not a control-plane call), with this host's instance id.
    facts = Facts(instance_labels={**metadata, "instance_id": instance_id})
    src = StateSource(
        f"ssm:{PARAMETER}",
        host / "source",
        SourceFetcher(REGION, session=session),
        validate=lambda loaded: file_problems(loaded, run_promtool=False),
    )
    side = _aws_side(host / "ampd.json", session)
    passes = 0
    source_failures: list[str] = []
    workspace = None
    while time.monotonic() < deadline:
        try:
            spec = src.current().spec
        except Exception as e:  # reported, then retried when the source says
            time.sleep(max(0.2, src.next_poll_in()))
            last_error = str(e)
            source_failures.append("timeout" if "timeout" in last_error.lower() else "other")
            continue
        passes += 1
        result = _aws_pass(side, spec, facts, refresh=passes > 1)
        if result.workspace is not None and all(o.ok for o in result.outcomes):
            workspace = result.workspace.id
            break
        # when to look again is the AWS side's to say (its retry book), as in the daemon
        time.sleep(result.requeue_after or min(0.2 * passes, 1.0))
    else:
        last_error = "deadline"
    out = {
        "id": workspace,
        "seconds": round(time.monotonic() - started, 4),
        "passes": passes,
        "cached": (host / "source" / "state.yml").exists(),
        "source_failures": source_failures,
    }
    if workspace is None:
        out["error"] = last_error
    return out


def worker(args: argparse.Namespace) -> int:
    import structlog  # noqa: PLC0415

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    os.environ.update(
        AWS_ENDPOINT_URL=args.endpoint,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
    )
    from ampd.gateways import imds  # noqa: PLC0415
    from tests.harness.imds import ImdsServer  # noqa: PLC0415

    # One IMDSv2 stand-in per worker process, read once through ampd's own client (a
    # hundred threads of one process at it at once would run into its 1 s timeout, which
    # no real host does: each has its own IMDS).
    with ImdsServer(instance_id=f"i-{os.getpid():017x}", region=REGION) as server:
        metadata = dict(imds.instance_labels(server.endpoint, timeout=10.0) or {})
    if "account_id" not in metadata:
        raise SystemExit("the IMDS stand-in's identity document has no account id")
    deadline = time.monotonic() + args.timeout
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(args.hosts)

    def one(i: int) -> None:
        start.wait()
        r = boot_host(i, Path(args.dir), deadline, metadata)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.hosts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from ampd.aws.gateway.client import api_call_counts  # noqa: PLC0415

    codes = [[op, code, n] for (op, code), n in api_call_counts().items()]
    sys.stdout.write(json.dumps({"hosts": results, "aws_codes": codes}) + "\n")
    return 0


# -- steady state -------------------------------------------------------------------------------


def steady_state_reads(hosts: int, hours: float = 1.0) -> tuple[float, int]:
    """SSM reads per host per hour: ``hosts`` sources poll for ``hours`` of simulated
    time (real interval and jitter, a simulated clock) against the emulator."""
    from ampd.gateways.statesource import SourceFetcher  # noqa: PLC0415
    from ampd.source.state import StateSource  # noqa: PLC0415

    now = [0.0]
    fetcher = SourceFetcher(REGION)
    sources = [
        StateSource(
            f"ssm:{PARAMETER}",
            None,
            fetcher,
            validate=lambda _loaded: [],
            clock=lambda: now[0],
            rng=random.Random(i),
        )
        for i in range(hosts)
    ]
    for s in sources:
        for _ in range(30):  # the emulator may still be busy with the boot's stragglers
            try:
                s.current()
                break
            except Exception:
                time.sleep(1)
    base = fetcher.calls
    end = hours * 3600
    while True:
        nxt = min(now[0] + s.next_poll_in() for s in sources)
        if nxt > end:
            break
        now[0] = nxt
        for s in sources:
            if s.next_poll_in() <= 0:
                s.poll()
    reads = fetcher.calls - base
    return reads / hosts / hours, reads


# -- the benchmark --------------------------------------------------------------------------------


def _put_state(em: AwsEmulator, mode: str, workspace_id: str | None = None) -> None:
    import boto3  # noqa: PLC0415

    ssm = boto3.client(
        "ssm",
        endpoint_url=em.endpoint,
        region_name=REGION,
        aws_access_key_id="AKIDOPERATOR",
        aws_secret_access_key="testing",  # noqa: S106 (the emulator's fake credentials)
    )
    ssm.put_parameter(
        Name=PARAMETER, Value=fleet_state(mode, workspace_id), Type="SecureString", Overwrite=True
    )


def _manager(em: AwsEmulator, tmp: str) -> str:
    """The fleet's one manager (a CI job): creates the workspace before the hosts boot."""
    os.environ.update(AWS_ENDPOINT_URL=em.endpoint, AWS_EC2_METADATA_DISABLED="true")
    import boto3  # noqa: PLC0415

    from ampd.spec.load import load_spec  # noqa: PLC0415

    session = boto3.session.Session(
        aws_access_key_id="AKIDMANAGER",
        aws_secret_access_key="testing",  # noqa: S106 (the emulator's fake credentials)
        region_name=REGION,
    )
    side = _aws_side(Path(tmp) / "manager.json", session)
    spec = load_spec(fleet_state("manage"), "manage.yml").spec
    for attempt in range(10):
        result = _aws_pass(side, spec, refresh=attempt > 0)
        if result.workspace is not None and all(o.ok for o in result.outcomes):
            return str(result.workspace.id)
    raise SystemExit("the manager could not create the workspace")


def run(args: argparse.Namespace) -> int:
    import structlog  # noqa: PLC0415

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    per_process = max(1, args.hosts // args.processes)
    total = per_process * args.processes
    with AwsEmulator() as em, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106
        _put_state(em, args.mode)
        if args.mode == "observe":
            ws_id = _manager(em, tmp)
            if args.pin_id:  # the manager (CI) writes the id into the fleet's state
                _put_state(em, args.mode, ws_id)
        em.reset_requests()
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_fleet_boot",
                    "--worker",
                    "--endpoint",
                    em.endpoint,
                    "--dir",
                    tmp,
                    "--hosts",
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
        results: list[dict[str, Any]] = []
        aws_codes: Counter[str] = Counter()
        try:
            for p in procs:
                out, _ = p.communicate(timeout=args.timeout + 120)
                got = json.loads(out.strip().splitlines()[-1])
                results += got["hosts"]
                for op, code, n in got["aws_codes"]:
                    aws_codes[f"{op} {code}"] += n
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        wall = time.monotonic() - started
        requests = em.requests
        workspaces = em.workspace_ids()
        os.environ["AWS_ENDPOINT_URL"] = em.endpoint
        per_hour, _ = steady_state_reads(args.steady_hosts)
    by_service = Counter(r.service for r in requests)
    by_op = Counter(f"{r.service}:{r.operation}" for r in requests)
    seconds = [r["seconds"] for r in results]
    ids = [r["id"] for r in results]
    converged = sum(1 for i in ids if i is not None)
    calls = len(requests) / total
    ssm_calls = by_service["ssm"] / total
    ok = len(workspaces) == 1 and converged == total and len({i for i in ids if i}) == 1
    q = statistics.quantiles(seconds, n=100, method="inclusive") if len(seconds) > 1 else [0.0] * 99
    failed_reads = Counter(f for r in results for f in r["source_failures"])
    failed_aws = {k: n for k, n in aws_codes.items() if not k.endswith(" OK")}
    retried = (
        ", ".join(
            [f"ssm:GetParameters {kind} {n}" for kind, n in sorted(failed_reads.items())]
            + [f"{k} {n}" for k, n in sorted(failed_aws.items())]
        )
        or "none"
    )
    top = ", ".join(f"{op} {n / total:.2f}" for op, n in by_op.most_common())
    md = "\n".join(
        [
            f"## Fleet boot, 1,000 hosts, `aws.mode: {args.mode}`"
            + (", `workspace.id` in the state" if args.pin_id else "")
            + " (`bench/bench_fleet_boot.py`)",
            "",
            f"{total} hosts ({args.processes} processes x {per_process} threads) boot at once "
            "against the emulator on loopback, each with its own identity (access key, "
            "instance id), state directory and ampd.json, and the state in SSM Parameter "
            f"Store (`ssm:{PARAMETER}`, SecureString)"
            + (
                "; one manager created the workspace before they booted (not counted)."
                if args.mode == "observe"
                else "; every host may create the workspace."
            ),
            "",
            "| metric | value |",
            "|---|---|",
            f"| workspaces in the account afterwards | **{len(workspaces)}** |",
            f"| hosts converged | {converged} / {total} |",
            f"| control-plane calls per host (SSM reads included; goal <= 2) | **{calls:.2f}** |",
            f"| of which SSM reads per host at boot | {ssm_calls:.2f} |",
            f"| calls per host by operation | {top} |",
            "| calls made again because the first went unanswered or failed (client side) | "
            f"{retried} |",
            f"| SSM reads per host per hour, steady state (60 s +-20 %) | {per_hour:.1f} |",
            f"| time until all converged | {wall:.1f} s |",
            f"| per host p50 / p95 / max | {q[49]:.2f} / {q[94]:.2f} / {max(seconds):.2f} s |",
            f"| passes per host (max) | {max(r['passes'] for r in results)} |",
            f"| hosts with the state cached (0600) | {sum(r['cached'] for r in results)} |",
            f"| result | {'PASS' if ok else 'FAIL'} (goal <= 2 calls: "
            f"{'met' if calls <= 2 else 'not met'}) |",
        ]
    )
    sys.stdout.write(md + "\n")
    if not args.no_write:
        write_section(f"fleet_boot_{args.mode}{'_pinned' if args.pin_id else ''}", md)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--mode", choices=["observe", "manage"], default="observe")
    parser.add_argument(
        "--pin-id", action="store_true", help="observe: the fleet state names workspace.id"
    )
    parser.add_argument("--steady-hosts", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return worker(args) if args.worker else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
