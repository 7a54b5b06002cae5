"""The ingest side's reads: the dry scrapes (cached per job and target until the job's
configuration changes or ``SCRAPE_TTL`` passes), the managed Prometheus' own /metrics
(a rate between two reads), the prices (state, Price List at most daily, cache,
built-in), and the last applied estimate from ampd.json. Writes nothing.

The two jobs ampd adds follow their process (``ampd.ingest.builtin``): Prometheus' is
counted from the pass's one read of its /metrics, every pass; ampd's count is kept only
from a settled process and only while the same socket listens. Either, when it cannot
be read, is estimated from a model and named as such."""

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
from ampd.ingest.builtin import ampd_model, prometheus_model, settled, spec_resources
from ampd.ingest.exposition import count_series, sample_sum
from ampd.ingest.model import Measured, Prices
from ampd.ingest.plan import IngestSeen, job_interval, scrape_jobs, target_url
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
Identity = Callable[[str], int | None]


@dataclass(frozen=True)
class Kept:
    """A built-in job's count, kept for the process (listening socket) it came from."""

    config: str
    identity: int
    series: int


@dataclass
class Memory:
    """What the side keeps between passes: the dry scrapes and the last counter read."""

    scrapes: dict[tuple[str, str], tuple[str, float, int | None]] = field(default_factory=dict)
    builtin: dict[tuple[str, str], Kept] = field(default_factory=dict)  # settled counts
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
        identity: Identity = gateway.listener_inode,
        wall: Callable[[], float] = time.time,
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
        self.identity = identity
        self.wall = wall
        self.memory = Memory()

    def observe(
        self, spec: StateSpec, facts: Facts, fleet_size: int, fleet_source: str | None = None
    ) -> IngestSeen:
        """``facts.reads``: the pass's shared reads, through which the owned readers read
        (Prometheus' /metrics once a pass for the rate and the job, and not again when
        another reader handed the same reads asked first). ``fleet_source``:
        where ``fleet_size`` comes from (None: not known)."""
        region = region_of(spec, facts)
        prices, fresh, notes = self.prices(spec, region)
        stored = self.store.load().ingest
        with gateway.shared_reads(facts.reads):
            scrapes, modeled = self.dry_scrapes(spec, facts)
            measured = self.measure(spec)
        return IngestSeen(
            region=region or "unknown",
            fleet_size=fleet_size,
            scrapes=scrapes,
            prices=prices,
            fresh_cache=fresh,
            before=stored,
            measured=measured,
            notes=notes,
            modeled=modeled,
            fleet_source=fleet_source,
        )

    # ---- the dry scrapes --------------------------------------------------------------
    def dry_scrapes(
        self, spec: StateSpec, facts: Facts | None = None
    ) -> tuple[dict[tuple[str, str], int | None], dict[tuple[str, str], str]]:
        """Each target's series (None: not read), and the built-in targets estimated
        from a model instead (their basis, for the plan to say)."""
        jobs = scrape_jobs(spec)
        out: dict[tuple[str, str], int | None] = {}
        modeled: dict[tuple[str, str], str] = {}
        now = self.clock()
        for job in jobs:
            config = job.model_dump_json()
            for target in job.targets:
                if job.job in BUILTIN_JOBS:
                    series, basis = self._builtin(spec, facts or Facts(), job, target, config)
                    out[(job.job, target)] = series
                    if basis is not None:
                        modeled[(job.job, target)] = basis
                else:
                    out[(job.job, target)] = self._series(job, target, config, now)
        with self.memory.lock:  # jobs and targets gone are forgotten
            self.memory.scrapes = {k: v for k, v in self.memory.scrapes.items() if k in out}
            self.memory.builtin = {k: v for k, v in self.memory.builtin.items() if k in out}
        return out, modeled

    def _builtin(
        self, spec: StateSpec, facts: Facts, job: ScrapeConfigSpec, target: str, config: str
    ) -> tuple[int | None, str | None]:
        """A built-in job's series: ampd's kept count while the same settled process
        listens; else read now; a process still starting, or not running, is taken at
        its model (the basis is returned) when that says more."""
        key = (job.job, target)
        ident = self.identity(target)
        with self.memory.lock:
            kept = self.memory.builtin.get(key)
        if kept is not None and (kept.config, kept.identity) == (config, ident):
            return kept.series, None
        got = self._read(job, target_url(job, target))
        progress.mark()
        model = self._model(spec, facts, job.job)
        if got.body is None:
            log.info("ingest.target_unreadable", job=job.job, target=target, error=got.error)
            if model is None:
                return None, None
            why = got.error.splitlines()[0] if got.error else "no answer"
            return model[0], f"not scraped ({why}): estimated from {model[1]}"
        series = count_series(got.body)
        slowest = max((job_interval(spec, j) for j in scrape_jobs(spec)), default=15.0)
        if settled(job.job, got.body, self.wall(), slowest):
            if job.job == "ampd" and ident is not None:  # Prometheus': the pass's read
                with self.memory.lock:
                    self.memory.builtin[key] = Kept(config, ident, series)
            return series, None
        with self.memory.lock:
            self.memory.builtin.pop(key, None)
        if model is not None and model[0] > series:  # still starting: it counts low
            return model[0], f"still starting ({series} series so far): estimated from {model[1]}"
        return series, None

    def _model(self, spec: StateSpec, facts: Facts, job: str) -> tuple[int, str] | None:
        jobs = scrape_jobs(spec)
        if job == "prometheus":
            prom = spec.prometheus
            remote_write = prom is not None and prom.remote_write is not None
            return prometheus_model(facts.prometheus_version, len(jobs) - 1, remote_write)
        return ampd_model(spec_resources(spec, facts.prometheus_can_sign), len(jobs))

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
