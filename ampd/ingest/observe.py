"""The ingest side's reads: the dry scrapes (cached per job and target until the job's
configuration changes or ``SCRAPE_TTL`` passes), the managed Prometheus' own /metrics
(a rate between two reads), the prices (state, Price List at most daily, cache,
built-in), and the last applied estimate from ampd.json. Writes nothing."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ampd.engine.facts import Facts
from ampd.gateways import progress
from ampd.gateways.files import read_bytes
from ampd.gateways.store import StoreView
from ampd.ingest import gateway
from ampd.ingest.exposition import count_series, sample_sum
from ampd.ingest.model import Measured, Prices
from ampd.ingest.plan import IngestSeen, scrape_jobs, target_url
from ampd.ingest.prices import (
    BUILT_IN,
    decode_cache,
    encode_cache,
    parse_price_list,
    state_prices,
    unknown_note,
)
from ampd.spec.checks import BUILTIN_JOBS
from ampd.spec.models import ScrapeConfigSpec, StateSpec

log = structlog.get_logger()

SCRAPE_TTL = 600.0  # a target is dry-scraped again after this long, or when its job changes
UNREADABLE_TTL = 60.0  # ... and one that did not answer, after this long
PRICES_FILE = "prices.json"  # under the state directory: the Price List's last answers
SENT = "prometheus_remote_storage_samples_total"
ACTIVE = ("prometheus_agent_active_series", "prometheus_tsdb_head_series")

Scraper = Callable[[str], gateway.Fetched]
PriceAsker = Callable[[str, str | None], list[str]]
MetricsReader = Callable[[str], gateway.Fetched]


@dataclass
class Memory:
    """What the side keeps between passes: the dry scrapes and the last counter read."""

    scrapes: dict[tuple[str, str], tuple[str, float, int | None]] = field(default_factory=dict)
    sent: tuple[float, float] | None = None  # (monotonic time, samples sent so far)
    asked: dict[str, Prices] = field(default_factory=dict)  # the Price List's answers
    failed: dict[str, str] = field(default_factory=dict)  # why it did not answer
    lock: threading.Lock = field(default_factory=threading.Lock)


def region_of(spec: StateSpec, facts: Facts) -> str | None:
    if facts.workspace is not None:
        return facts.workspace.region
    region = spec.aws_or_default.region
    return None if region == "auto" else region


class Observer:
    def __init__(
        self,
        state_dir: Path,
        store: StoreView,
        *,
        metrics: MetricsReader | None,
        own_metrics: MetricsReader | None = None,
        scrape: Scraper = gateway.dry_scrape,
        ask_prices: PriceAsker = gateway.price_list,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], datetime.date] = lambda: datetime.datetime.now(datetime.UTC).date(),
    ) -> None:
        self.cache_path = state_dir / PRICES_FILE
        self.store = store
        self.metrics = metrics
        # the jobs ampd adds are read only from a server running as whom it should: the
        # managed Prometheus' user, and the user ampd runs as (ampd.wiring.make_ingest)
        self.owned = {"prometheus": metrics, "ampd": own_metrics}
        self.scrape = scrape
        self.ask_prices = ask_prices
        self.clock = clock
        self.today = today
        self.memory = Memory()

    def observe(self, spec: StateSpec, facts: Facts, fleet_size: int) -> IngestSeen:
        region = region_of(spec, facts)
        prices, fresh, notes = self.prices(spec, region)
        stored = self.store.load().ingest
        return IngestSeen(
            region=region or "unknown",
            fleet_size=fleet_size,
            scrapes=self.dry_scrapes(spec),
            prices=prices,
            fresh_cache=fresh,
            before=stored,
            measured=self.measure(spec),
            notes=notes,
        )

    # ---- the dry scrapes --------------------------------------------------------------
    def dry_scrapes(self, spec: StateSpec) -> dict[tuple[str, str], int | None]:
        jobs = scrape_jobs(spec)
        out: dict[tuple[str, str], int | None] = {}
        now = self.clock()
        for job in jobs:
            config = job.model_dump_json()
            for target in job.targets:
                out[(job.job, target)] = self._series(job, target, config, now)
        with self.memory.lock:  # jobs and targets gone are forgotten
            self.memory.scrapes = {k: v for k, v in self.memory.scrapes.items() if k in out}
        return out

    def _series(self, job: ScrapeConfigSpec, target: str, config: str, now: float) -> int | None:
        key = (job.job, target)
        with self.memory.lock:
            cached = self.memory.scrapes.get(key)
        ttl = SCRAPE_TTL if cached is None or cached[2] is not None else UNREADABLE_TTL
        if cached is not None and cached[0] == config and now - cached[1] < ttl:
            return cached[2]
        got = self._read(job, target_url(job, target))
        progress.mark()  # one target read: the watchdog hears of each, not only the pass
        series = count_series(got.body) if got.body is not None else None
        if got.body is None:
            log.info("ingest.target_unreadable", job=job.job, target=target, error=got.error)
        with self.memory.lock:
            self.memory.scrapes[key] = (config, now, series)
        return series

    def _read(self, job: ScrapeConfigSpec, url: str) -> gateway.Fetched:
        if job.job not in BUILTIN_JOBS:  # the state's jobs: as Prometheus scrapes them
            return self.scrape(url)
        reader = self.owned.get(job.job)
        if reader is None:
            return gateway.Fetched(None, "its owner is not known: not read")
        return reader(url)

    # ---- what Prometheus measured -----------------------------------------------------
    def measure(self, spec: StateSpec) -> Measured:
        prom = spec.prometheus
        if self.metrics is None or prom is None or not prom.enabled:
            return Measured()
        got = self.metrics(f"http://{prom.listen}/metrics")
        if got.body is None:
            return Measured(notes=(f"Prometheus' /metrics on {prom.listen}: {got.error}",))
        sent = sample_sum(got.body, SENT)
        active = next((v for n in ACTIVE if (v := sample_sum(got.body, n)) is not None), None)
        now = self.clock()
        rate: float | None = None
        with self.memory.lock:
            last, self.memory.sent = self.memory.sent, (now, sent) if sent is not None else None
        if last is not None and sent is not None and now > last[0] and sent >= last[1]:
            rate = (sent - last[1]) / (now - last[0])
        return Measured(rate, None if active is None else int(active))

    # ---- prices -----------------------------------------------------------------------
    def prices(
        self, spec: StateSpec, region: str | None
    ) -> tuple[Prices | None, bytes | None, tuple[str, ...]]:
        """The prices, the cache's new bytes when the Price List was asked, and notes."""
        if region is None:
            return None, None, ("the workspace's Region is not known: no prices",)
        chosen = state_prices(spec.cost, region)
        if chosen is not None:
            return chosen, None, ()
        cache = decode_cache(read_bytes(self.cache_path))
        today = self.today().isoformat()
        cached = cache.get(region)
        if cached is not None and cached.as_of == today:
            return cached, None, ()
        asked, failed = self._ask(spec, region, today)
        if asked is not None:
            return asked, encode_cache({**cache, region: asked}), ()
        notes = (f"the AWS Price List could not be asked: {failed}",) if failed else ()
        if cached is not None:
            return cached, None, notes
        if region in BUILT_IN:
            return BUILT_IN[region], None, notes
        return None, None, (*notes, unknown_note(region))

    def _ask(self, spec: StateSpec, region: str, today: str) -> tuple[Prices | None, str]:
        """The Price List's answer for ``region`` (or why there is none), asked at most
        once a day by this process, and only when AWS is in play (the state has a
        workspace). An answer without ingestion tiers is no answer: no error either."""
        with self.memory.lock:
            known = self.memory.asked.get(region)
            failed = self.memory.failed.get(region, "")
        if known is not None and known.as_of == today:
            return (known if known.tiers else None), failed  # no tiers: none today
        if spec.workspace is None:
            return None, ""
        failed = ""
        try:
            items = self.ask_prices(region, spec.aws_or_default.endpoint_url)
        except Exception as e:  # any failure: the cache or the built-in table
            log.info("ingest.price_list_failed", region=region, error=str(e))
            items, failed = [], str(e).splitlines()[0] if str(e) else type(e).__name__
        asked = parse_price_list(items, region, today)
        with self.memory.lock:  # a failure is not asked again today either
            self.memory.asked[region] = asked or Prices(region, today, "price-list", ())
            self.memory.failed[region] = failed
        return asked, failed
