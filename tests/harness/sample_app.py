"""A tiny application with a /metrics endpoint whose values change.

ampd_demo_requests_total        counter, +1 on every request (scrapes included)
ampd_demo_scrapes_total         counter, +1 on every /metrics request, before answering:
                                scrape k reads k, so the values that reach a receiver
                                say exactly which scrapes were lost on the way
ampd_demo_temperature_celsius   gauge, drifts with time

python -m tests.harness.sample_app --port 8080
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from tests.harness.aio import ThreadedApp, run_standalone


class SampleApp(ThreadedApp):
    """Serves ``/`` and ``/metrics`` on 127.0.0.1; ``target`` is host:port for scraping."""

    name = "sample-app"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ampd_demo_requests", "Requests served by the demo app", registry=self.registry
        )
        self.temperature = Gauge(
            "ampd_demo_temperature_celsius", "A made-up temperature", registry=self.registry
        )
        self.scrapes_counter = Counter(
            "ampd_demo_scrapes", "Scrapes of /metrics served", registry=self.registry
        )
        self._started_at = time.monotonic()

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def scrapes(self) -> int:
        """How many times /metrics has been served (the last value handed out)."""
        return int(self.registry.get_sample_value("ampd_demo_scrapes_total") or 0)

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _index(self, request: web.Request) -> web.Response:
        self.requests.inc()
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.requests.inc()
        if request.headers.get("User-Agent", "").startswith("ampd-ingest-estimate"):
            # ampd plan's dry scrape (a read, at most one per 10 minutes): not a
            # Prometheus scrape, so the loss benchmarks do not count it as one
            return web.Response(
                body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )
        self.scrapes_counter.inc()
        t = time.monotonic() - self._started_at
        self.temperature.set(round(21.0 + 3.0 * math.sin(t / 30.0), 3))
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.sample_app")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    app = SampleApp(args.port)

    def start() -> dict[str, Any]:
        app.start()
        return {"url": app.url, "metrics_url": app.metrics_url, "target": app.target}

    return run_standalone(start, app.stop)


if __name__ == "__main__":
    raise SystemExit(main())
