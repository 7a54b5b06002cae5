"""Start -> READY=1 of ``ampd run`` on a notify socket, against a bare Python process that
sends READY=1 as soon as it starts (same interpreter, same socket), in the same run.

    python -m bench.bench_start [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_idle import hide_dev_only
from bench.report import environment, write_section
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.local.test_daemon_local import base_state

GOAL_S = 0.3
BARE = (
    "import os, socket\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
    "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\n"
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


class Listener:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_ready(self, t0: float, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                break
            if b"READY=1" in data.split(b"\n"):
                return time.perf_counter() - t0
        raise AssertionError("no READY=1")

    def close(self) -> None:
        self.sock.close()


def ampd_ready(tmp: Path, env: dict[str, str]) -> float:
    tmp.mkdir(parents=True, exist_ok=True)
    listener = Listener(tmp / "notify.sock")
    proc = AmpdProcess(tmp, env={**env, "NOTIFY_SOCKET": str(listener.path)})
    proc.write_state(base_state(free_port(), free_port()))
    try:
        t0 = time.perf_counter()
        proc.start()
        return listener.wait_ready(t0)
    finally:
        proc.stop()
        listener.close()


def bare_ready(tmp: Path) -> float:
    listener = Listener(tmp / "bare.sock")
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            [sys.executable, "-c", BARE], env={"NOTIFY_SOCKET": str(listener.path)}
        )
        took = listener.wait_ready(t0)
        p.wait(10)
        return took
    finally:
        listener.close()


def imports_only(env: dict[str, str]) -> float:
    """Spawn -> exit of an interpreter that only imports what ``ampd run`` imports."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import ampd.cli, ampd.daemon.loop"],
        env={**os.environ, **env},
        check=True,
    )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_start")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    ampd: list[float] = []
    bare: list[float] = []
    imports: list[float] = []
    with tempfile.TemporaryDirectory() as hidden:
        env = hide_dev_only(Path(hidden))
        for i in range(args.rounds):
            with tempfile.TemporaryDirectory() as d:
                bare.append(bare_ready(Path(d)))
                imports.append(imports_only(env))
                ampd.append(ampd_ready(Path(d) / f"r{i}", env))
    a50, b50 = statistics.median(ampd), statistics.median(bare)
    i50 = statistics.median(imports)
    verdict = "met" if a50 < GOAL_S else f"**missed** ({ms(a50)})"
    md = "\n".join(
        [
            "## Start -> READY=1 (`bench/bench_start.py`)",
            "",
            f"{args.rounds} starts of `ampd run` (local-only state file, agent-mode "
            "Prometheus; dev-only packages hidden, as in the .deb) with `NOTIFY_SOCKET` "
            "set, timed from spawn to the READY=1 datagram; bare = the same interpreter "
            "sending READY=1 as its first statement.",
            "",
            environment(),
            "",
            "| measure | ampd p50 | ampd max | bare p50 | ratio p50 | goal |",
            "|---|---:|---:|---:|---:|---|",
            f"| spawn -> READY=1 | {ms(a50)} | {ms(max(ampd))} | {ms(b50)} "
            f"| {a50 / b50:.1f}x | < {GOAL_S * 1000:.0f} ms: {verdict} |",
            f"| spawn -> exit, importing what `ampd run` imports and nothing else "
            f"| {ms(i50)} | {ms(max(imports))} | {ms(b50)} | {i50 / b50:.1f}x | - |",
            "",
            f"Imports are {i50 / a50:.0%} of ampd's time to READY=1.",
        ]
    )
    print(md)
    if not args.no_doc:
        write_section("start", md)


if __name__ == "__main__":
    main()
