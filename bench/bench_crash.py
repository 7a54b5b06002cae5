"""kill -9 ampd at random moments of passes that write files and call AWS, then check
that nothing was lost or doubled.

Two kinds of trial, both against the AWS emulator (workspace tags and a rule group change
every trial) and an IMDS stand-in:

- ``apply``: ``ampd apply --once`` alternates between two state files A and B and is
  killed after a random delay within its usual run time;
- ``daemon``: ``ampd run`` with a real Prometheus is given A or B and killed at a random
  moment of the pass that follows; then it is started again.

After every kill: each generated file is byte for byte its A or its B version (never a
mix, never cut short); ``ampd.json`` parses (or the next run detects and rebuilds it).
After the next clean run: it converges (exit 0 / Synced and Healthy) on what was asked,
there is exactly one workspace and one rule groups namespace, and (daemon trials) exactly
one Prometheus runs. Under the supervisor runtime a child dies with ampd by design
(PDEATHSIG), so its pid changes across a kill -9; the trials count those replacements.

    python -m bench.bench_crash [--apply-trials 150] [--daemon-trials 50] [--seed 1]
                                [--minutes M]   # stop starting trials of a kind after M min

Writes its section of docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import environment
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_local import AmpdProcess, free_port, prometheus_pids
from tests.harness.imds import ImdsServer
from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "reliability.md"
REGION = "eu-west-1"
RULES = "groups:\n  - name: node\n    rules:\n      - record: job:up:{fn}\n        expr: {fn}(up)\n"


@dataclass
class Tally:
    trials: int = 0
    killed_mid_pass: int = 0  # the process was still running when the kill came
    files_checked: int = 0
    torn_files: int = 0  # neither the old nor the new version: lost
    leftover_tmp: int = 0  # temp files left by a kill (harmless, counted)
    store_corrupt: int = 0
    store_not_rebuilt: int = 0
    not_converged: int = 0
    duplicate_resources: int = 0
    prometheus_replaced: int = 0  # supervisor runtime: children die with ampd (PDEATHSIG)
    prometheus_not_one: int = 0  # an orphan or a second Prometheus after the restart: lost
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return (
            self.torn_files
            + self.store_not_rebuilt
            + self.not_converged
            + self.duplicate_resources
            + self.prometheus_not_one
        )


class Rig:
    def __init__(self, work: Path, aws: AwsEmulator, imds: ImdsServer) -> None:
        self.aws = aws
        self.rules = work / "rules.yml"
        self.prom_port = free_port()
        self.metrics_port = free_port()
        self.proc = AmpdProcess(
            work,
            env={
                "AWS_ENDPOINT_URL": aws.endpoint,
                "AWS_ACCESS_KEY_ID": "AKIDCRASHTEST",
                "AWS_SECRET_ACCESS_KEY": "crash-test",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint + "/",
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "AWS_PROFILE": "",
                "AWS_SESSION_TOKEN": "",
            },
        )

    def state(self, variant: str) -> dict[str, Any]:
        jobs = [{"job": f"{variant}_{i}", "targets": [f"127.0.0.1:{i + 1}"]} for i in range(3)]
        return {
            "version": 1,
            "stack": "crash",
            "aws": {"region": REGION, "data_plane_url": "http://127.0.0.1:9", "resync": "30s"},
            "workspace": {
                "alias": "crash",
                "tags": {"round": variant},
                "rule_groups": [{"name": "node", "file": str(self.rules)}],
            },
            "prometheus": {
                "listen": f"127.0.0.1:{self.prom_port}",
                "scrape_interval": "1s",
                "remote_write": None,
                "scrape_configs": jobs,
            },
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "runtime": "supervisor",
        }

    def write(self, variant: str) -> None:
        self.rules.write_text(RULES.format(fn="sum" if variant == "a" else "count"))
        self.proc.write_state(self.state(variant))

    @property
    def generated(self) -> Path:
        return self.proc.state_dir / "generated"

    def snapshot(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in self.generated.iterdir()
            if p.is_file() and not p.name.startswith(".")
        }

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.proc.log_path.open("ab")
        try:
            return subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "ampd"),
                    "--log-format",
                    "json",
                    "--state",
                    str(self.proc.state_file),
                    *args,
                ],
                env=self.proc.env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()

    def aws_duplicates(self) -> str | None:
        ids = self.aws.workspace_ids(REGION)
        if len(ids) != 1:
            return f"{len(ids)} workspaces"
        amp = self.aws.client("amp", REGION)
        names = [
            n["name"]
            for n in amp.list_rule_groups_namespaces(workspaceId=ids[0])["ruleGroupsNamespaces"]
        ]
        return None if names == ["node"] else f"rule groups namespaces {names}"


def check_after_kill(rig: Rig, versions: dict[str, set[bytes]], tally: Tally, what: str) -> None:
    for name, data in rig.snapshot().items():
        tally.files_checked += 1
        if name in versions and data not in versions[name]:
            tally.torn_files += 1
            tally.problems.append(f"{what}: {name} is neither version ({len(data)} bytes)")
    tally.leftover_tmp += sum(1 for p in rig.generated.iterdir() if p.name.endswith(".tmp"))
    store = rig.proc.state_dir / "ampd.json"
    if store.exists():
        try:
            json.loads(store.read_bytes())
        except ValueError:
            tally.store_corrupt += 1


def check_store_after_recovery(rig: Rig, tally: Tally, what: str) -> None:
    try:
        json.loads((rig.proc.state_dir / "ampd.json").read_bytes())
    except (OSError, ValueError) as e:
        tally.store_not_rebuilt += 1
        tally.problems.append(f"{what}: ampd.json after recovery: {e}")
    dup = rig.aws_duplicates()
    if dup:
        tally.duplicate_resources += 1
        tally.problems.append(f"{what}: {dup}")


Snapshot = dict[str, bytes]


def learn_versions(rig: Rig, run: Any) -> tuple[dict[str, Snapshot], dict[str, set[bytes]]]:
    """Every generated file after clean runs on A and on B, and both versions of each."""
    by_variant: dict[str, Snapshot] = {}
    for variant in ("a", "b"):
        rig.write(variant)
        run()
        by_variant[variant] = rig.snapshot()
    versions: dict[str, set[bytes]] = {}
    for snap in by_variant.values():
        for name, data in snap.items():
            versions.setdefault(name, set()).add(data)
    return by_variant, versions


def apply_trials(
    n: int, rng: random.Random, rig: Rig, deadline: float = float("inf")
) -> tuple[Tally, list[float]]:
    tally = Tally()

    def clean() -> float:
        t = time.monotonic()
        res = rig.proc.ampd("apply", "--once")
        if res.returncode != 0:
            raise RuntimeError(f"apply: {res.returncode}: {res.stdout}{res.stderr}")
        return time.monotonic() - t

    by_variant, versions = learn_versions(rig, clean)
    durations = [clean() for _ in range(3)]
    span = max(durations) * 1.1
    for i in range(n):
        if time.monotonic() > deadline:
            break
        variant = "a" if i % 2 == 0 else "b"
        rig.write(variant)
        child = rig.spawn("apply", "--once")
        time.sleep(rng.uniform(0, span))
        if child.poll() is None:
            tally.killed_mid_pass += 1
        child.kill()
        child.wait()
        tally.trials += 1
        check_after_kill(rig, versions, tally, f"apply trial {i}")
        res = rig.proc.ampd("apply", "--once")
        if res.returncode != 0 or rig.snapshot() != by_variant[variant]:
            tally.not_converged += 1
            tally.problems.append(
                f"apply trial {i}: recovery exit {res.returncode}: {res.stderr[-400:]}"
            )
        check_store_after_recovery(rig, tally, f"apply trial {i}")
        print(f"apply trial {i}: lost so far {tally.lost} {tally.problems[-1:]}", flush=True)
    return tally, durations


def daemon_trials(n: int, rng: random.Random, rig: Rig, deadline: float = float("inf")) -> Tally:
    tally = Tally()
    proc = rig.proc
    proc.write_state(rig.state("a"))
    proc.start()

    def settled() -> None:
        # status.json outlives a killed daemon: wait for the one the new daemon writes
        assert proc.proc is not None
        pid = proc.proc.pid
        wait_for(
            lambda: (proc.status() or {}).get("pid") == pid, 60, what="status from this daemon"
        )
        proc.wait_spec(timeout=60)
        proc.wait_healthy(timeout=60)

    by_variant, versions = learn_versions(rig, settled)
    marker = str(proc.state_dir)
    for i in range(n):
        if time.monotonic() > deadline:
            break
        pids = prometheus_pids(marker)
        variant = "a" if i % 2 == 0 else "b"
        rig.write(variant)
        time.sleep(rng.uniform(0, 0.6))  # watch -> debounce -> pass: writes and AWS calls
        assert proc.proc is not None
        if proc.proc.poll() is None:
            tally.killed_mid_pass += 1
        proc.proc.kill()
        proc.proc.wait()
        tally.trials += 1
        check_after_kill(rig, versions, tally, f"daemon trial {i}")
        proc.start()
        try:
            settled()
        except AssertionError as e:
            tally.not_converged += 1
            tally.problems.append(f"daemon trial {i}: {e}")
            continue
        if rig.snapshot() != by_variant[variant]:
            tally.not_converged += 1
            tally.problems.append(f"daemon trial {i}: generated files are not {variant}'s")
        now = prometheus_pids(marker)
        if len(now) != 1:
            tally.prometheus_not_one += 1
            tally.problems.append(f"daemon trial {i}: Prometheus {pids} -> {now}")
        elif now != pids:
            tally.prometheus_replaced += 1
        check_store_after_recovery(rig, tally, f"daemon trial {i}")
        print(f"daemon trial {i}: lost so far {tally.lost} {tally.problems[-1:]}", flush=True)
    proc.stop()
    return tally


def write_section(markdown: str) -> None:
    name = "crash"
    text = DOC.read_text() if DOC.exists() else "# Reliability\n"
    block = f"<!-- bench:{name} -->\n{markdown.rstrip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text}\n{block}\n"
    DOC.write_text(text)


def table(rows: dict[str, Tally]) -> str:
    head = (
        "| trials | kind | killed mid-pass | files checked | torn files | ampd.json corrupt |"
        " not rebuilt | not converged | duplicate AWS resources | Prometheus processes"
        " after restart ≠ 1 | lost |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {t.trials} | {kind} | {t.killed_mid_pass} | {t.files_checked} | {t.torn_files} |"
        f" {t.store_corrupt} | {t.store_not_rebuilt} | {t.not_converged} |"
        f" {t.duplicate_resources} | {t.prometheus_not_one if kind == 'daemon' else '—'} |"
        f" {t.lost} |\n"
        for kind, t in rows.items()
    )
    return head + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_crash")
    parser.add_argument("--apply-trials", type=int, default=150)
    parser.add_argument("--daemon-trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--minutes", type=float, default=0, help="time budget per kind of trial (0: none)"
    )
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    rows: dict[str, Tally] = {}
    started = time.monotonic()

    def deadline() -> float:
        return time.monotonic() + args.minutes * 60 if args.minutes else float("inf")

    with (
        AwsEmulator() as aws,
        ImdsServer(region=REGION) as imds,
        tempfile.TemporaryDirectory(prefix="ampd-crash-") as tmp,
    ):
        if args.apply_trials:
            aws.reset()
            rows["apply --once"], durations = apply_trials(
                args.apply_trials, rng, Rig(Path(tmp) / "apply", aws, imds), deadline()
            )
            print(f"apply --once takes {min(durations):.2f}-{max(durations):.2f} s here")
        if args.daemon_trials:
            aws.reset()
            rig = Rig(Path(tmp) / "daemon", aws, imds)
            try:
                rows["daemon"] = daemon_trials(args.daemon_trials, rng, rig, deadline())
            finally:
                rig.proc.stop()
                for pid in prometheus_pids(str(rig.proc.state_dir)):
                    with contextlib.suppress(OSError):
                        subprocess.run(["kill", str(pid)], check=False)
    took = time.monotonic() - started
    text = table(rows)
    for kind, t in rows.items():
        for p in t.problems[:20]:
            print(f"{kind}: {p}")
    total = sum(t.trials for t in rows.values())
    lost = sum(t.lost for t in rows.values())
    replaced = sum(t.prometheus_replaced for t in rows.values())
    summary = (
        f"{total} kill -9 trials in {took / 60:.1f} min, {lost} lost. Under the supervisor"
        f" runtime Prometheus dies with ampd by design (PDEATHSIG): {replaced} daemon"
        f" trials found it replaced by exactly one new Prometheus. {environment()}"
    )
    print(text + "\n" + summary)
    if not args.no_doc:
        write_section(f"{text}\n{summary}\n")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
