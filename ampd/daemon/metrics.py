"""ampd's own /metrics (ampd_*), served on 127.0.0.1:9795 by default."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ampd import __version__
from ampd.core import Change, Health, SyncStatus
from ampd.engine.status import PassSummary
from ampd.gateways.notify import Notifier


class _AwsCalls(Collector):
    def __init__(self, source: Callable[[], dict[tuple[str, str], int]] | None) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(
            "ampd_aws_api_calls",
            "AWS API calls by operation and result code",
            labels=["operation", "code"],
        )
        for (op, code), n in sorted((self.source() if self.source else {}).items()):
            fam.add_metric([op, code], n)
        yield fam


class _Notify(Collector):
    def __init__(self, notifier: Notifier | None) -> None:
        self.notifier = notifier

    def collect(self) -> Iterator[Metric]:
        n = self.notifier
        dropped = CounterMetricFamily(
            "ampd_notify_dropped",
            "sd_notify datagrams dropped: the notify socket was full (EAGAIN/ENOBUFS)",
        )
        dropped.add_metric([], n.dropped if n is not None else 0)
        yield dropped
        failed = CounterMetricFamily(
            "ampd_notify_failed", "sd_notify datagrams not sent for another reason"
        )
        failed.add_metric([], n.failed if n is not None else 0)
        yield failed


class _Ingest(Collector):
    """The ingest side's estimate and what Prometheus measured (so a fleet dashboard can
    rank hosts by samples/s), from the last pass. A value not known is left out, never 0."""

    def __init__(self) -> None:
        self.doc: Mapping[str, Any] | None = None

    def observe(self, ingest: Mapping[str, Any] | None) -> None:
        self.doc = ingest

    def collect(self) -> Iterator[Metric]:
        doc = self.doc
        empty: Mapping[str, Any] = {"jobs": [], "total": {"after": {}}}
        est: Mapping[str, Any] = doc["estimate"] if doc is not None else empty
        measured: Mapping[str, Any] = doc["measured"] if doc is not None else {}
        rate = GaugeMetricFamily(
            "ampd_ingest_estimated_samples_per_second",
            "Estimated samples/s this host sends to AMP, per scrape job",
            labels=["job"],
        )
        series = GaugeMetricFamily(
            "ampd_ingest_estimated_series",
            "Estimated active series per scrape job (with the 5 Prometheus adds per target)",
            labels=["job"],
        )
        for j in est["jobs"]:
            rate.add_metric([j["job"]], j["after"]["samples_per_second"])
            series.add_metric([j["job"]], j["after"]["series"])
        yield rate
        yield series
        for name, help_, value in (
            (
                "ampd_ingest_measured_samples_per_second",
                "Samples/s the managed Prometheus sent (rate of its remote-storage samples)",
                measured.get("samples_per_second"),
            ),
            (
                "ampd_ingest_active_series",
                "Active series of the managed Prometheus",
                measured.get("active_series"),
            ),
            (
                "ampd_ingest_estimated_dollars_per_month",
                "Estimated AMP ingestion dollars a month for this host (the fleet's tiers)",
                est["total"]["after"].get("dollars_per_month"),
            ),
        ):
            fam = GaugeMetricFamily(name, help_)
            if value is not None:
                fam.add_metric([], value)
            yield fam


class Metrics:
    def __init__(
        self,
        aws_calls: Callable[[], dict[tuple[str, str], int]] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        r = self.registry = CollectorRegistry()
        self.duration = Histogram(
            "ampd_reconcile_duration_seconds",
            "Duration of reconcile passes",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.passes = Counter(
            "ampd_reconcile", "Reconcile passes by outcome", ["outcome"], registry=r
        )
        self.sync = Gauge(
            "ampd_resource_sync",
            "1 for the resource's current sync status",
            ["kind", "name", "ampd_resource_sync"],
            registry=r,
        )
        self.health = Gauge(
            "ampd_resource_health",
            "1 for the resource's current health",
            ["kind", "name", "ampd_resource_health"],
            registry=r,
        )
        self.drift = Counter(
            "ampd_drift_detected", "Drift found, by resource kind", ["kind"], registry=r
        )
        self.last_success = Gauge(
            "ampd_last_successful_reconcile_timestamp_seconds",
            "When the last pass without errors ended",
            registry=r,
        )
        self.spec_valid = Gauge("ampd_spec_valid", "1 when the state file is valid", registry=r)
        self.ingest = _Ingest()
        r.register(self.ingest)
        self.state_version = Gauge(
            "ampd_state_version_info",
            "1 for the state source and the version of it in force",
            ["source", "version"],
            registry=r,
        )
        info = Gauge("ampd_build_info", "ampd's version", ["version"], registry=r)
        info.labels(__version__).set(1)
        r.register(_AwsCalls(aws_calls))
        r.register(_Notify(notifier))
        for outcome in ("ok", "partial", "error"):
            self.passes.labels(outcome)

    def observe(self, s: PassSummary, end: float, fresh_drift: Sequence[Change]) -> None:
        self.duration.observe(s.duration_s)
        outcome = "error" if s.spec_error else ("partial" if s.failed else "ok")
        self.passes.labels(outcome).inc()
        if outcome == "ok":
            self.last_success.set(end)
        self.spec_valid.set(0 if s.spec_error else 1)
        self.state_version.clear()
        if s.spec_version is not None:
            self.state_version.labels(s.spec_file, s.spec_version).set(1)
        for change in fresh_drift:
            self.drift.labels(change.key.kind.value).inc()
        self.ingest.observe(s.ingest)
        self.sync.clear()
        self.health.clear()
        for st in s.statuses:
            for value in SyncStatus:
                self.sync.labels(st.key.kind.value, st.key.name, value.value).set(
                    1 if st.sync == value else 0
                )
            for h in Health:
                self.health.labels(st.key.kind.value, st.key.name, h.value).set(
                    1 if st.health == h else 0
                )

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
