"""Run asyncio servers from synchronous tests: an event loop in a thread, an aiohttp
app served on loopback from it, and the standalone `python -m tests.harness.X` runner."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import signal
import socket
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NamedTuple, Self, TypeVar
from urllib.parse import urlsplit

from aiohttp import web

from tests.harness.lifecycle import StartStop

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (for programs that need a number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


class LoopThread:
    """An event loop running in a daemon thread; ``call()`` runs a coroutine there."""

    def __init__(self, name: str = "harness-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        if not self._started:
            self._thread.start()
            self._started = True

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self._started:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self._started = False
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()


class ThreadedApp(StartStop):
    """An aiohttp application served on 127.0.0.1 from its own loop thread.

    Subclasses implement ``make_app()``; ``url``/``port`` are set once started.
    """

    name = "app"

    def __init__(self, port: int = 0, host: str = LOOPBACK) -> None:
        self.host = host
        self.requested_port = port
        self.port = 0
        self._loop_thread: LoopThread | None = None
        self._runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        assert self._loop_thread is not None, f"{self.name} not started"
        return self._loop_thread.call(coro, timeout)

    def start(self) -> Self:
        self._loop_thread = LoopThread(f"harness-{self.name}")
        self._loop_thread.start()
        try:
            self._loop_thread.call(self._start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._loop_thread is None:
            return
        with contextlib.suppress(Exception):
            self._loop_thread.call(self._stop())
        self._loop_thread.stop()
        self._loop_thread = None


def wait_for_signal() -> None:
    """Block the main thread until SIGTERM or SIGINT."""
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        done.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    while not done.wait(1.0):
        pass


def run_standalone(start: Callable[[], dict[str, Any]], stop: Callable[[], None]) -> int:
    """Start a stand-in, print one JSON line describing it, run until SIGTERM/SIGINT."""
    info = start()
    try:
        print(json.dumps(info), flush=True)
        wait_for_signal()
    finally:
        stop()
    return 0


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_call(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 10.0,
    target: str | None = None,
) -> Reply:
    """One HTTP/1.1 request with exactly the given headers (a ``Host`` here replaces the
    default); ``target`` overrides the request-target (e.g. an absolute URI)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port, timeout=timeout)
    try:
        path = target or (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        hdrs = dict(headers or {})
        conn.putrequest(method, path, skip_host="Host" in hdrs, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if body or method in ("POST", "PUT"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()
