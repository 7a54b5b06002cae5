"""The state file's ``prometheus`` section: the Prometheus ampd runs, its scrape jobs and
its remote write."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from ampd.spec.types import AbsPath, Duration, LabelName, Listen, Strict

# Prometheus reads each limit into a Go uint: 0 to 2^32-1 fits on every platform
ScrapeLimit = Annotated[int, Field(ge=0, le=2**32 - 1)]


class ScrapeConfigSpec(Strict):
    job: LabelName
    targets: Annotated[list[str], Field(min_length=1)]
    metrics_path: AbsPath = "/metrics"
    interval: Duration | None = None
    scheme: Literal["http", "https"] = "http"
    labels: dict[LabelName, str] = Field(default_factory=dict)
    # Prometheus' per-scrape guards (0 or unset: no limit). A scrape over sample_limit
    # fails whole (the target is down, none of its samples is kept); one with more labels
    # than label_limit, or a value longer than label_value_length_limit, fails too.
    sample_limit: ScrapeLimit | None = None
    label_limit: ScrapeLimit | None = None
    label_value_length_limit: ScrapeLimit | None = None

    @model_validator(mode="after")
    def _targets(self) -> ScrapeConfigSpec:
        for t in self.targets:
            host, sep, port = t.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"target {t!r} is not HOST:PORT")
        return self


class QueueSpec(Strict):
    capacity: Annotated[int, Field(ge=1)] = 10000
    max_samples_per_send: Annotated[int, Field(ge=1)] = 2000
    max_shards: Annotated[int, Field(ge=1)] | None = None


class RemoteWriteSpec(Strict):
    signing: Literal["auto", "native", "proxy"] = "auto"
    queue: QueueSpec = Field(default_factory=QueueSpec)


InstanceLabel = Literal[
    "instance_id", "availability_zone", "instance_type", "region", "account_id", "image_id"
]


class PrometheusSpec(Strict):
    enabled: bool = True
    binary: AbsPath = "/usr/bin/prometheus"
    mode: Literal["agent", "server"] = "agent"
    listen: Listen = "127.0.0.1:9090"
    allow_non_loopback: bool = False
    scrape_interval: Duration = "15s"
    retention: Duration | None = None
    external_labels: dict[LabelName, str] = Field(default_factory=dict)
    instance_labels: list[InstanceLabel] = Field(default_factory=list)
    scrape_configs: list[ScrapeConfigSpec] = Field(default_factory=list)
    remote_write: RemoteWriteSpec | None = Field(default_factory=RemoteWriteSpec)

    @model_validator(mode="after")
    def _jobs_unique(self) -> PrometheusSpec:
        jobs = [s.job for s in self.scrape_configs]
        dupes = sorted({j for j in jobs if jobs.count(j) > 1})
        if dupes:
            raise ValueError(f"scrape job names must be unique; repeated: {', '.join(dupes)}")
        if self.retention is not None and self.mode == "agent":
            raise ValueError("retention applies to mode: server only (agent keeps only a WAL)")
        return self
