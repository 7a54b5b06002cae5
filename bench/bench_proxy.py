"""Signing proxy overhead: throughput and added p50/p99 latency versus an unsigned direct
path to the same upstream, measured in the same run, on loopback only.

    .venv/bin/python -m bench.bench_proxy [--requests 2000] [--concurrency 16]

The upstream is a sink answering 204 to anything, so the difference between the two
paths is the proxy: reading the body, signing it (SHA-256 + HMAC chain), the extra
loopback hop and streaming the response back. The proxy runs as its own process
(``python -m ampd.proxy``), as in production. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.report import write_section
from tests.harness import remote_write
from tests.harness.aio import ThreadedApp

REPO = Path(__file__).resolve().parent.parent
WORKSPACE = "ws-bench"
PATH = f"/workspaces/{WORKSPACE}/api/v1/remote_write"
TIME_LIMIT = 60.0  # seconds per measured phase, whatever --requests says


class Sink(ThreadedApp):
    name = "sink"

    def make_app(self) -> web.Application:
        async def sink(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=204)

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", sink)
        return app


@dataclass(frozen=True)
class Result:
    path: str
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]


async def _run(url: str, body: bytes, total: int, concurrency: int, label: str) -> Result:
    latencies: list[float] = []
    deadline = time.monotonic() + TIME_LIMIT
    remaining = total
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=remote_write.HEADERS) as r:
                    await r.read()
                    if r.status != 204:
                        raise RuntimeError(f"{label}: HTTP {r.status}: {await r.text()}")
                latencies.append((time.perf_counter() - t0) * 1000)

        # warm up connections (and the proxy's credentials) outside the measurement
        for _ in range(min(20, total)):
            async with session.post(url, data=body, headers=remote_write.HEADERS) as r:
                await r.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(label, concurrency, len(latencies), seconds, latencies)


def _start_proxy(upstream: str, workdir: Path) -> tuple[subprocess.Popen[str], str]:
    config = workdir / "proxy.json"
    config.write_text(
        json.dumps(
            {
                "listen": "127.0.0.1:0",
                "region": "us-east-1",
                "service": "aps",
                "upstream": upstream,
                "workspace_id": WORKSPACE,
                "assume_role_arn": None,
                "allow_non_loopback": False,
            }
        )
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIAAMPDBENCH0000001",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_CONFIG_FILE": str(workdir / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ampd.proxy", "--config", str(config), "--log-level", "INFO"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the first INFO event is proxy.listening
        event = json.loads(line)
        if event.get("event") == "proxy.listening":
            return proc, str(event["url"])
    raise RuntimeError(f"proxy exited with {proc.wait()}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _body(series: int) -> bytes:
    now = int(time.time() * 1000)
    return remote_write.body(
        (
            {"__name__": "bench_metric", "instance": f"host-{i % 50}", "series": str(i)},
            [(float(i), now)],
        )
        for i in range(series)
    )


def _markdown(results: list[Result], body: bytes, requests: int) -> str:
    rows = [
        "| path | concurrency | requests | throughput (req/s) | p50 (ms) | p99 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows += [
        f"| {r.path} | {r.concurrency} | {r.requests} | {r.throughput:,.0f} | "
        f"{r.pct(0.50):.2f} | {r.pct(0.99):.2f} |"
        for r in results
    ]
    by = {(r.path, r.concurrency): r for r in results}
    added = []
    for c in sorted({r.concurrency for r in results}):
        d, p = by[("direct", c)], by[("proxy", c)]
        added.append(
            f"- concurrency {c}: +{p.pct(0.5) - d.pct(0.5):.2f} ms p50, "
            f"+{p.pct(0.99) - d.pct(0.99):.2f} ms p99, throughput "
            f"{p.throughput / d.throughput:.0%} of direct"
        )
    mean_direct = statistics.mean(by[("direct", 1)].latencies_ms)
    return "\n".join(
        [
            "## Signing proxy (`bench/bench_proxy.py`)",
            "",
            f"Remote-write POSTs of {len(body):,} bytes ({requests} per phase, at most "
            f"{TIME_LIMIT:.0f} s each) to a loopback sink answering 204: *direct* (unsigned) "
            "versus *proxy* (`python -m ampd.proxy`, SigV4-signed with botocore, same sink). "
            f"Host: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"aiohttp {aiohttp.__version__}; client and sink share one process.",
            "",
            *rows,
            "",
            "Added by the proxy:",
            *added,
            "",
            f"(direct mean at concurrency 1: {mean_direct:.2f} ms)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_proxy")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--series", type=int, default=300, help="series per write body")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    body = _body(args.series)
    results: list[Result] = []
    with Sink() as sink, tempfile.TemporaryDirectory(prefix="ampd-bench-") as tmp:
        proc, proxy_url = _start_proxy(sink.url, Path(tmp))
        try:
            for concurrency in (1, args.concurrency):
                for label, base in (("direct", sink.url), ("proxy", proxy_url)):
                    result = asyncio.run(_run(base + PATH, body, args.requests, concurrency, label))
                    results.append(result)
                    print(
                        f"{label:6} c={concurrency:<3} n={result.requests:<5} "
                        f"{result.throughput:8.0f} req/s  p50 {result.pct(0.5):6.2f} ms  "
                        f"p99 {result.pct(0.99):6.2f} ms",
                        flush=True,
                    )
        finally:
            _stop(proc)
    markdown = _markdown(results, body, args.requests)
    print(markdown)
    if not args.no_write:
        write_section("proxy", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
