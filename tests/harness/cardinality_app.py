"""An application whose /metrics serves exactly N series, most of them from one
high-cardinality label: what an edit that adds such a target costs in samples.

ampd_card_requests_total{user="u00001".."uNNNNN"}   counter, N - 3 series (one per user),
                                                    +(user % 5 + 1) on every scrape
ampd_card_scrapes_total                             counter, +1 on every /metrics request
ampd_card_users                                     gauge, the number of user series
ampd_card_build_info{version="1"}                   gauge, always 1

The series set never changes while the app runs (no churn): every scrape returns the
same N series, so a scraper ingests exactly N samples per scrape (plus its own).

python -m tests.harness.cardinality_app --port 8080 --series 5000
"""

from __future__ import annotations

import argparse
from typing import Any

from aiohttp import web

from tests.harness.aio import ThreadedApp, run_standalone

DEFAULT_SERIES = 5000
PLAIN_SERIES = 3  # scrapes_total, users, build_info
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
USER_FAMILY = "ampd_card_requests_total"


class CardinalityApp(ThreadedApp):
    """Serves ``/`` and ``/metrics`` on 127.0.0.1 with exactly ``series`` series;
    ``target`` is host:port for scraping."""

    name = "cardinality-app"

    def __init__(self, series: int = DEFAULT_SERIES, port: int = 0) -> None:
        if series < PLAIN_SERIES:
            raise ValueError(f"series must be at least {PLAIN_SERIES}, not {series}")
        super().__init__(port)
        self.series = series
        self.users = series - PLAIN_SERIES
        width = max(5, len(str(self.users)))
        # the label part of each user series, built once: a scrape only adds the values
        self._user_lines = [
            f'{USER_FAMILY}{{user="u{i:0{width}d}"}} ' for i in range(1, self.users + 1)
        ]
        self._steps = [i % 5 + 1 for i in range(1, self.users + 1)]
        self._scrapes = 0

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"{self.url}/metrics"

    @property
    def scrapes(self) -> int:
        """How many times /metrics has been served."""
        return self._scrapes

    def exposition(self, scrape: int) -> str:
        """The text /metrics answers on its ``scrape``-th request (1-based)."""
        lines = [
            "# HELP ampd_card_requests_total Requests per user (one series per user).",
            "# TYPE ampd_card_requests_total counter",
            *(
                f"{prefix}{scrape * step}"
                for prefix, step in zip(self._user_lines, self._steps, strict=True)
            ),
            "# HELP ampd_card_scrapes_total Scrapes of /metrics served.",
            "# TYPE ampd_card_scrapes_total counter",
            f"ampd_card_scrapes_total {scrape}",
            "# HELP ampd_card_users Series in ampd_card_requests_total.",
            "# TYPE ampd_card_users gauge",
            f"ampd_card_users {self.users}",
            "# HELP ampd_card_build_info Build of the app.",
            "# TYPE ampd_card_build_info gauge",
            'ampd_card_build_info{version="1"} 1',
        ]
        return "\n".join(lines) + "\n"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        self._scrapes += 1  # the loop thread is the only writer
        return web.Response(
            body=self.exposition(self._scrapes).encode(), headers={"Content-Type": CONTENT_TYPE}
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.cardinality_app")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--series", type=int, default=DEFAULT_SERIES)
    args = parser.parse_args(argv)
    app = CardinalityApp(args.series, args.port)

    def start() -> dict[str, Any]:
        app.start()
        return {
            "url": app.url,
            "metrics_url": app.metrics_url,
            "target": app.target,
            "series": app.series,
        }

    return run_standalone(start, app.stop)


if __name__ == "__main__":
    raise SystemExit(main())
