"""A stand-in for a running Prometheus on loopback, owned by the test's own uid: it
answers what ampd asks (``/-/ready``, ``/metrics``, ``/api/v1/targets``) and counts
each GET by path, so a test can say how often a pass read what."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["PromStub", "prom_stub"]


class PromStub:
    """``successful``: ``prometheus_config_last_reload_successful``; ``failed``: the
    remote-write samples sent and failed so far; ``extra``: more exposition lines."""

    def __init__(self) -> None:
        self.successful = 1
        self.failed = 0
        self.extra = ""
        self.gets: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with stub._lock:
                    stub.gets[self.path] += 1
                status, body = stub.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.listen = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str) -> tuple[int, bytes]:
        if path == "/-/ready":
            return 200, b"ready\n"
        if path == "/metrics":
            body = (
                f"prometheus_config_last_reload_successful {self.successful}\n"
                "prometheus_config_last_reload_success_timestamp_seconds 1.7e+09\n"
                f"prometheus_remote_storage_samples_total {self.failed}\n"
                f"prometheus_remote_storage_samples_failed_total {self.failed}\n"
                f"{self.extra}"
            )
            return 200, body.encode()
        if path.startswith("/api/v1/targets"):
            return 200, b'{"data": {"activeTargets": []}}'
        return 404, b""

    def count(self, path: str) -> int:
        with self._lock:
            return self.gets[path]


@contextmanager
def prom_stub() -> Iterator[PromStub]:
    """A started stub, stopped and its socket closed on the way out."""
    stub = PromStub()
    with stub.server:  # closes the listening socket last
        stub.thread.start()
        try:
            yield stub
        finally:
            stub.server.shutdown()
