"""The socket-flood phase of bench/bench_proxy.py (``--flood``): another local user holds
many idle loopback sockets and opens new connections to the proxy at a steady rate,
while ampd's user sends signed writes. The proxy checks every new connection's owner;
the goal (#23) is that this raises the signed-write p99 by at most 2 ms.

    .venv/bin/python -m bench.bench_proxy --flood [--sockets 30000] [--rate 200]
                                                  [--seconds 15] [--rounds 3] [--no-write]

Processes: the sink (answers 200), the proxy (``python -m ampd.proxy``, allowed: this
process's user only), a paced writer (signed remote-write POSTs on keep-alive
connections, ``--write-rate`` per second, latency per request) and, in flood phases, the
*flooder*: a child that raises its RLIMIT_NOFILE, drops to ``nobody``, opens ``--sockets``
loopback sockets (connected pairs to its own listeners, both ends held, idle) and then
opens ``--rate`` connections per second to the proxy, each sending one write (refused,
403: nobody is not allowed) and closing. Quiet and flood phases alternate, ``--rounds``
times, for each lookup: the exact sock_diag query (the default) and the /proc table scan
(the fallback where netlink is filtered), both off the event loop. Everything is on
loopback and bounded: phases by time, the flooder by ``--seconds`` and by its parent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import pwd
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from ampd.gateways import peers, sockdiag
from ampd.proxy.config import load
from ampd.proxy.server import ProxyServer
from bench import proxy_load
from bench.report import REPO, environment, write_section
from tests.harness import remote_write

LOOPBACK = "127.0.0.1"
WORKSPACE = "ws-bench"
WARMUP = 5


# -- the flooder (runs as nobody) ---------------------------------------------------------


def _hold_sockets(count: int) -> tuple[list[socket.socket], list[socket.socket]]:
    """``count`` idle sockets: connected pairs to our own listeners, both ends kept
    (one listener per 20,000 connections keeps within the ephemeral port range)."""
    held: list[socket.socket] = []
    listeners: list[socket.socket] = []
    pairs = count // 2
    while len(held) < 2 * pairs:
        if len(held) // 2 % 20000 == 0:
            lst = socket.socket()
            lst.bind((LOOPBACK, 0))
            lst.listen(4096)
            listeners.append(lst)
        lst = listeners[-1]
        client = socket.socket()
        client.connect(lst.getsockname())
        server, _ = lst.accept()
        held += [client, server]
    return held, listeners


async def _connect_at_rate(
    port: int, request: bytes, rate: float, seconds: float
) -> dict[str, int]:
    """New connections at ``rate`` per second for ``seconds``: one request each, read the
    answer, close. Counts answers by status line."""
    counts: dict[str, int] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            key = head[9:12].decode()
            writer.close()
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as e:
            key = type(e).__name__
        counts[key] = counts.get(key, 0) + 1

    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        while n < due:
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.sleep(1 / rate)
    if tasks:
        await asyncio.wait(tasks, timeout=15)
    counts["opened"] = n
    return counts


def _hold_in_children(count: int, per_process: int) -> tuple[list[int], int]:
    """Fork helpers (already nobody) that hold ``per_process`` sockets each until this
    process goes away; returns their pids and how many they hold, once all say so."""
    pids: list[int] = []
    held = 0
    while count - held > per_process:
        share = min(per_process, count - held - per_process)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the helper: hold, say so, wait for the parent to go, exit
            os.close(ready_r)
            try:
                kept = _hold_sockets(share)
                os.write(ready_w, str(len(kept[0])).encode())
                os.close(ready_w)
                while os.getppid() != 1:
                    time.sleep(0.2)
            finally:
                os._exit(0)
        os.close(ready_w)
        with os.fdopen(ready_r) as ready:
            held += int(ready.read() or 0)
        pids.append(pid)
    return pids, held


def flooder_main(
    conn: Connection, port: int, request: bytes, sockets: int, rate: float, seconds: float
) -> None:
    """Become nobody, hold the sockets (in helper processes where RLIMIT_NOFILE's hard
    limit, which only CAP_SYS_RESOURCE may raise, is below ``sockets``), say so, wait
    for "go", then connect at ``rate`` for ``seconds``; report counts and exit."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = sockets + 4096
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
        except (ValueError, OSError):  # no CAP_SYS_RESOURCE: as high as allowed
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        nobody = pwd.getpwnam("nobody")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
        t0 = time.monotonic()
        per_process = (limit - 2048) // 2 * 2
        pids, in_children = _hold_in_children(sockets, per_process)
        held, listeners = _hold_sockets(sockets - in_children)
    except Exception as e:  # say why instead of leaving the parent waiting
        conn.send({"error": f"{type(e).__name__}: {e}"})
        return
    conn.send(
        {
            "held": len(held) + in_children,
            "processes": 1 + len(pids),
            "uid": os.getuid(),
            "open_s": time.monotonic() - t0,
        }
    )
    if conn.poll(120) and conn.recv() == "go":
        conn.send(asyncio.run(_connect_at_rate(port, request, rate, seconds)))
    for s in held + listeners:
        s.close()
    for pid in pids:
        os.kill(pid, 15)
        os.waitpid(pid, 0)


# -- the paced writer (ampd's user) --------------------------------------------------------


async def _paced(
    port: int, request: bytes, rate: float, seconds: float, connections: int
) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    interval = connections / rate

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and int(value):
                await reader.readexactly(int(value))
        return head[9:12]

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        for _ in range(WARMUP):
            await one(reader, writer)
        await asyncio.sleep(interval * k / connections)  # spread the connections out
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            t0 = time.perf_counter()
            status = await one(reader, writer)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != b"200":
                errors.append(status.decode())
            i += 1
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
        writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))
    return latencies, errors[:5]


def writer_main(
    conn: Connection, port: int, request: bytes, rate: float, seconds: float, connections: int
) -> None:
    conn.send(asyncio.run(_paced(port, request, rate, seconds, connections)))


# -- results -------------------------------------------------------------------------------


def pct(data: list[float], q: float) -> float:
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class FloodResult:
    quiet: list[float] = field(default_factory=list)
    flood: list[float] = field(default_factory=list)
    refused: int = 0  # 403s the flooder got
    opened: int = 0
    flood_seconds: float = 0.0
    held: int = 0
    processes: int = 1
    other: dict[str, int] = field(default_factory=dict)

    def added_p99(self) -> float:
        return pct(self.flood, 0.99) - pct(self.quiet, 0.99)


# -- the run ---------------------------------------------------------------------------------

LOOKUPS = {
    "sock_diag": "exact NETLINK sock_diag query, in a worker thread (default)",
    "proc_scan": "/proc/self/net/tcp{,6} scan, in a worker thread (fallback)",
}


def serve_with_lookup(config_path: Path, lookup: str) -> int:
    """``python -m ampd.proxy`` with the peer lookup pinned (the benchmark's variants)."""
    config = load(config_path)
    owner = peers.socket_owner if lookup == "proc_scan" else sockdiag.connection_owner

    async def run() -> int:
        stop = asyncio.Event()
        server = ProxyServer(config, peer_owner=owner)
        await server.start()
        print(json.dumps({"event": "proxy.listening", "url": server.url}), file=sys.stderr)
        sys.stderr.flush()
        asyncio.get_running_loop().add_signal_handler(15, stop.set)
        await stop.wait()
        await server.stop()
        return 0

    return asyncio.run(run())


def _start_proxy(upstream: str, workdir: Path, lookup: str) -> tuple[subprocess.Popen[str], int]:
    config = workdir / f"proxy-{lookup}.json"
    config.write_text(
        json.dumps(
            {
                "listen": f"{LOOPBACK}:0",
                "region": "us-east-1",
                "upstream": upstream,
                "workspace_id": WORKSPACE,
                "allowed_uids": [os.getuid()],
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
    argv = [sys.executable, "-m", "bench.bench_proxy", "--serve-lookup", str(config), lookup]
    # the log goes to a file: a pipe nobody reads would fill and stall the proxy
    log_path = workdir / f"proxy-{lookup}.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_file, text=True
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log_path.read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "proxy.listening":
                return proc, int(json.loads(line)["url"].rsplit(":", 1)[1])
        time.sleep(0.05)
    _stop(proc)
    raise RuntimeError(f"proxy did not start: {log_path.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _write_phase(
    ctx: mp.context.SpawnContext, port: int, request: bytes, args: argparse.Namespace
) -> tuple[mp.process.BaseProcess, Connection]:
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=writer_main,
        args=(child, port, request, args.write_rate, args.seconds, args.connections),
    )
    proc.start()
    return proc, parent


def _collect(proc: mp.process.BaseProcess, conn: Connection, timeout: float) -> list[float]:
    if not conn.poll(timeout):
        proc.kill()
        raise RuntimeError("the writer did not report")
    latencies, errors = conn.recv()
    proc.join(10)
    if errors or not latencies:
        raise RuntimeError(f"signed writes failed: {errors or 'none completed'}")
    return list(latencies)


def _flood_phase(
    ctx: mp.context.SpawnContext,
    port: int,
    request: bytes,
    args: argparse.Namespace,
    result: FloodResult,
) -> None:
    parent, child = ctx.Pipe()
    flooder = ctx.Process(
        target=flooder_main,
        args=(child, port, request, args.sockets, args.rate, args.seconds),
    )
    flooder.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("the flooder did not open its sockets in time")
        ready = parent.recv()
        if "error" in ready:
            raise RuntimeError(f"the flooder failed: {ready['error']}")
        result.held = ready["held"]
        result.processes = ready["processes"]
        writer, wconn = _write_phase(ctx, port, request, args)
        parent.send("go")
        result.flood += _collect(writer, wconn, args.seconds + 60)
        if not parent.poll(60):
            raise RuntimeError("the flooder did not report")
        counts: dict[str, int] = parent.recv()
        result.refused += counts.pop("403", 0)
        result.opened += counts.pop("opened", 0)
        result.flood_seconds += args.seconds
        for k, v in counts.items():
            result.other[k] = result.other.get(k, 0) + v
    finally:
        flooder.join(30)
        if flooder.is_alive():
            flooder.kill()


def run(args: argparse.Namespace) -> dict[str, FloodResult]:
    request = bench_request(args.series)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    sink = ctx.Process(target=proxy_load.sink_main, args=(child,), daemon=True)
    sink.start()
    results = {name: FloodResult() for name in LOOKUPS}
    try:
        sink_port = parent.recv()
        with tempfile.TemporaryDirectory(prefix="ampd-flood-") as tmp:
            proxies = {
                name: _start_proxy(f"http://{LOOPBACK}:{sink_port}", Path(tmp), name)
                for name in LOOKUPS
            }
            try:
                for r in range(args.rounds):
                    for name, (_proc, port) in proxies.items():
                        res = results[name]
                        writer, wconn = _write_phase(ctx, port, request, args)
                        quiet = _collect(writer, wconn, args.seconds + 60)
                        res.quiet += quiet
                        n_flood = len(res.flood)
                        _flood_phase(ctx, port, request, args, res)
                        flood = res.flood[n_flood:]
                        print(
                            f"  round {r + 1} {name:9} quiet p50 {pct(quiet, 0.5):5.2f} "
                            f"p99 {pct(quiet, 0.99):5.2f} ms | flood p50 {pct(flood, 0.5):5.2f} "
                            f"p99 {pct(flood, 0.99):5.2f} ms | held {res.held} sockets",
                            flush=True,
                        )
            finally:
                for proc, _ in proxies.values():
                    _stop(proc)
    finally:
        parent.send("stop")
        sink.join(10)
        if sink.is_alive():
            sink.kill()
    return results


def markdown(results: dict[str, FloodResult], args: argparse.Namespace, env: str) -> str:
    rows = []
    for name, res in results.items():
        rate = res.opened / res.flood_seconds if res.flood_seconds else 0.0
        rows.append(
            f"| {LOOKUPS[name]} | {len(res.quiet):,} / {len(res.flood):,} "
            f"| {pct(res.quiet, 0.5):.2f} / {pct(res.flood, 0.5):.2f} "
            f"| {pct(res.quiet, 0.99):.2f} / {pct(res.flood, 0.99):.2f} "
            f"| **{res.added_p99():+.2f}** | {res.held:,} | {rate:.0f}/s, {res.refused:,} refused |"
        )
    default = results["sock_diag"].added_p99()
    verdict = "met" if default <= 2.0 else "**missed**"
    return "\n".join(
        [
            "## Signing proxy under a socket flood (`bench/bench_proxy.py --flood`)",
            "",
            env,
            "",
            f"Another local user (`nobody`, a child that raised its RLIMIT_NOFILE and dropped "
            f"privileges) holds {args.sockets:,} idle loopback sockets ({args.sockets // 2:,} "
            f"connections to its own listeners, both ends kept) and opens {args.rate:.0f} new "
            "connections per second to the proxy, each sending one write (refused: 403, the "
            "proxy signs only for this process's user, after looking up the connection's "
            f"owner). Meanwhile signed remote-write POSTs ({args.series} series) go through "
            f"the same proxy at {args.write_rate:.0f}/s on {args.connections} keep-alive "
            f"connections. Quiet and flood phases of {args.seconds:.0f} s alternate, "
            f"{args.rounds} rounds, for each peer lookup; both proxies run throughout.",
            "",
            "| peer lookup | writes quiet / flood | p50 quiet / flood (ms) "
            "| p99 quiet / flood (ms) | added p99 (ms) | sockets held | flooder connections |",
            "|---|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"Goal (#23): the flood raises the signed-write p99 by at most 2 ms: {verdict} "
            f"({default:+.2f} ms with the default lookup).",
        ]
    )


def bench_request(series: int) -> bytes:
    now = int(time.time() * 1000)
    body = remote_write.body(
        (
            {"__name__": "bench_metric", "instance": f"host-{i % 50}", "series": str(i)},
            [(float(i), now)],
        )
        for i in range(series)
    )
    path = f"/workspaces/{WORKSPACE}/api/v1/remote_write"
    head = [f"POST {path} HTTP/1.1", f"Host: {LOOPBACK}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in remote_write.HEADERS.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def main(args: argparse.Namespace) -> int:
    results = run(args)
    text = markdown(results, args, environment())
    print(text)
    if not args.no_write:
        write_section("proxy_flood", text)
    return 0
