"""The processes of ``bench/bench_proxy.py --flood`` (run by bench/flood_run.py): the
*flooder*, another local user holding idle loopback sockets and opening connections to
the proxy at a steady rate; the paced *writer* of signed remote writes; the proxy with
its peer lookup pinned. Loopback only; everything is bounded in time.

The flooder raises its RLIMIT_NOFILE (to the hard limit when it may not raise that,
holding the rest of the sockets in forked helpers), drops to ``nobody``, opens the
sockets (connected pairs to its own listeners, both ends held, idle), says so, and on
"go" opens ``rate`` connections per second to the proxy, each sending one write
(refused: 403) and closing.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pwd
import resource
import socket
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

from ampd.gateways import peers, sockdiag
from ampd.proxy.config import load
from ampd.proxy.server import ProxyServer
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
    pairs = max(0, count) // 2
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
        gc.collect()
        gc.freeze()  # 30,000 socket objects: no collector passes over them while flooding
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


def lookup_costs(repeat: int = 50) -> dict[str, float]:
    """Median µs of one owner lookup of a live loopback connection of ours, each way."""
    out: dict[str, float] = {}
    with socket.create_server((LOOPBACK, 0)) as server:
        client = socket.create_connection(server.getsockname())
        conn, peer = server.accept()
        with client, conn:
            for name, fn in (
                ("sock_diag", sockdiag.connection_owner),
                ("proc_scan", peers.socket_owner),
            ):
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    assert fn(peer, conn.getsockname()) == os.getuid()
                    times.append((time.perf_counter() - t0) * 1e6)
                out[name] = sorted(times)[len(times) // 2]
    return out


# -- the paced writer (ampd's user) --------------------------------------------------------


async def _paced(
    conn: Connection, port: int, request: bytes, rate: float, seconds: float, connections: int
) -> tuple[list[float], list[str]]:
    """Open and warm ``connections`` keep-alive connections (so the proxy has checked
    them, as it has Prometheus' long-lived ones), say "ready", wait for "go", then send
    signed writes at ``rate`` for ``seconds``, timing each."""
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

    streams = [await asyncio.open_connection(LOOPBACK, port) for _ in range(connections)]
    for reader, writer in streams:
        for _ in range(WARMUP):
            await one(reader, writer)
    conn.send("ready")
    loop = asyncio.get_running_loop()
    if await loop.run_in_executor(None, conn.recv) != "go":
        return latencies, ["not started"]

    async def worker(k: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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

    await asyncio.gather(*(worker(k, r, w) for k, (r, w) in enumerate(streams)))
    return latencies, errors[:5]


def writer_main(
    conn: Connection, port: int, request: bytes, rate: float, seconds: float, connections: int
) -> None:
    conn.send(asyncio.run(_paced(conn, port, request, rate, seconds, connections)))


def bench_request(series: int) -> bytes:
    """One remote-write POST of ``series`` series, as raw HTTP/1.1."""
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
