"""The two jobs ampd adds follow their process: ampd's count is kept only from a settled
process and only while the same socket listens (a restart is read again at once); a
process still starting, or not running yet (the first ``ampd plan`` on a fresh host), is
estimated from a model and the plan says so. ampd's model is held to its registry."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prometheus_client.exposition import generate_latest

from ampd.core import Health, Kind, ResourceKey, ResourceStatus, SyncStatus
from ampd.daemon.metrics import Metrics
from ampd.engine.facts import Facts
from ampd.gateways.store import StoreView
from ampd.ingest.builtin import PROMETHEUS_MODELS, ampd_model, prometheus_model
from ampd.ingest.exposition import count_series
from ampd.ingest.gateway import Fetched, listener_inode
from ampd.ingest.model import Measured
from ampd.ingest.observe import Observer
from ampd.ingest.plan import IngestSeen, estimate, plan_ingest
from ampd.ingest.prices import BUILT_IN
from ampd.ingest.report import ingest_document
from ampd.spec.load import load_spec
from tests.harness.summaries import pass_summary

STATE = """\
version: 1
prometheus:
  scrape_configs:
    - {job: app, targets: ['127.0.0.1:9101']}
"""
SPEC = load_spec(STATE, "s.yml").spec
AMPD = ("ampd", "127.0.0.1:9795")
PROM = ("prometheus", "127.0.0.1:9090")
NOW = 1_800_000_000.0
FACTS = Facts(prometheus_version=(2, 42, 0))


def _ampd_body(passes: int, series: int) -> str:
    lines = [f'ampd_reconcile_total{{outcome="ok"}} {passes}']
    return "\n".join(lines + [f"ampd_x{i} 1" for i in range(series - 1)]) + "\n"


class Ampd:
    """ampd's /metrics as a reader, and which socket listens (its identity)."""

    def __init__(self) -> None:
        self.body: str | None = _ampd_body(0, 30)
        self.inode: int | None = 1001
        self.reads = 0

    def read(self, url: str) -> Fetched:
        self.reads += 1
        return Fetched(self.body) if self.body is not None else Fetched(None, "refused")

    def identity(self, listen: str) -> int | None:
        return self.inode if listen == AMPD[1] else None


def _observer(tmp_path: Path, ampd: Ampd, prom: str | None) -> Observer:
    def prometheus(url: str) -> Fetched:
        return Fetched(prom) if prom is not None else Fetched(None, "refused")

    return Observer(
        tmp_path,
        StoreView(tmp_path / "ampd.json"),
        metrics=prometheus,
        own_metrics=ampd.read,
        scrape=lambda url: Fetched("a 1\n"),
        identity=ampd.identity,
        wall=lambda: NOW,
    )


def test_ampds_count_follows_its_process(tmp_path: Path) -> None:
    ampd = Ampd()
    obs = _observer(tmp_path, ampd, None)
    first, modeled = obs.dry_scrapes(SPEC, FACTS)
    assert AMPD in modeled and "still starting (30 series so far)" in modeled[AMPD]
    # young: its model, which says more (Prometheus' 3 resources; 3 jobs with the app's)
    assert first[AMPD] == ampd_model(3, 3)[0] > 30
    obs.dry_scrapes(SPEC, FACTS)
    assert ampd.reads == 2  # a young count is not kept: read again the next pass
    ampd.body = _ampd_body(2, 140)  # settled: two passes counted
    scrapes, modeled = obs.dry_scrapes(SPEC, FACTS)
    assert scrapes[AMPD] == 140 and AMPD not in modeled
    assert obs.dry_scrapes(SPEC, FACTS)[0][AMPD] == 140 and ampd.reads == 3  # kept
    ampd.inode, ampd.body = 2002, _ampd_body(5, 150)  # restarted: another socket
    assert obs.dry_scrapes(SPEC, FACTS)[0][AMPD] == 150 and ampd.reads == 4
    obs.dry_scrapes(SPEC, FACTS)
    assert ampd.reads == 4  # kept for the new process


def test_prometheus_still_starting_is_taken_at_its_model_then_at_its_count(
    tmp_path: Path,
) -> None:
    young = f"up 1\nprocess_start_time_seconds {NOW - 5}\n"
    # its own job, ampd's and the app's; no workspace, so no remote-write queue
    model = prometheus_model((2, 42, 0), 2, False)
    assert model is not None
    expected, basis = model
    m = PROMETHEUS_MODELS[(2, 42)]
    assert expected == m.own + 2 * m.per_job - m.per_queue
    scrapes, modeled = _observer(tmp_path, Ampd(), young).dry_scrapes(SPEC, FACTS)
    assert scrapes[PROM] == expected
    assert modeled[PROM] == f"still starting (2 series so far): estimated from {basis}"
    settled = (
        "".join(f"m{i} 1\n" for i in range(300)) + f"process_start_time_seconds {NOW - 3600}\n"
    )
    scrapes, modeled = _observer(tmp_path, Ampd(), settled).dry_scrapes(SPEC, FACTS)
    assert scrapes[PROM] == 301 and PROM not in modeled


def test_a_fresh_host_plan_estimates_both_without_a_scrape_and_says_so(tmp_path: Path) -> None:
    ampd = Ampd()
    ampd.body, ampd.inode = None, None  # nothing runs yet
    obs = _observer(tmp_path, ampd, None)
    seen = obs.observe(SPEC, FACTS, 1)
    est = estimate(SPEC, seen)
    jobs = {j.job: j for j in est.jobs}
    model = prometheus_model((2, 42, 0), 2, False)
    assert model is not None and jobs["prometheus"].series == model[0] + 5
    assert jobs["ampd"].series > 5 and jobs["ampd"].modeled == ("127.0.0.1:9795",)
    assert jobs["app"].modeled == ()
    notes = [n for n in est.notes if "not scraped (refused): estimated from" in n]
    assert [n.split(":")[0] for n in notes] == ["prometheus (127.0.0.1", "ampd (127.0.0.1"]
    doc = ingest_document(plan_ingest(SPEC, seen), None, Measured())
    [prom] = [j for j in doc["estimate"]["jobs"] if j["job"] == "prometheus"]
    assert prom["estimated_without_scrape"] == ["127.0.0.1:9090"] and prom["unreadable"] == []


def test_without_a_prometheus_version_there_is_no_model_and_the_target_is_unreadable(
    tmp_path: Path,
) -> None:
    scrapes, modeled = _observer(tmp_path, Ampd(), None).dry_scrapes(SPEC, Facts())
    assert scrapes[PROM] is None and PROM not in modeled


def test_ampds_model_is_its_registry_after_a_pass() -> None:
    """The model's arithmetic against ampd's own registry (ampd.daemon.metrics): a metric
    added there without the model's constants moving fails here."""
    for resources, jobs in ((0, 1), (3, 2), (11, 4)):
        statuses = [
            ResourceStatus(ResourceKey(Kind.FILE, f"f{i}"), SyncStatus.SYNCED, Health.HEALTHY)
            for i in range(resources)
        ]
        seen = IngestSeen(
            "us-east-1",
            1,
            {(f"j{i}", "127.0.0.1:1"): 10 for i in range(jobs)},
            BUILT_IN["us-east-1"],
            None,
            None,
        )
        spec = load_spec(
            "version: 1\nprometheus:\n  scrape_configs:\n"
            + "".join(f"    - {{job: j{i}, targets: ['127.0.0.1:1']}}\n" for i in range(jobs)),
            "s.yml",
        ).spec
        plan = plan_ingest(spec, seen)
        doc = ingest_document(plan, None, Measured(1.0, 100))
        m = Metrics()
        m.observe(pass_summary(statuses=statuses, ingest=doc), 1.0, [])
        counted = count_series(generate_latest(m.registry).decode())
        assert counted == ampd_model(resources, len(plan.estimate.jobs))[0], (resources, jobs)


def test_a_restarted_listener_is_another_socket() -> None:
    """The identity the kept count is held to: the listening socket's inode, which a
    process that restarts on the same port does not keep."""
    first = socket.create_server(("127.0.0.1", 0))
    port = first.getsockname()[1]
    listen = f"127.0.0.1:{port}"
    try:
        before = listener_inode(listen)
        assert before is not None
        assert before == os.fstat(first.fileno()).st_ino
    finally:
        first.close()
    assert listener_inode(listen) is None  # nothing listens: no identity
    again = socket.create_server(("127.0.0.1", port))
    try:
        after = listener_inode(listen)
        assert after is not None and after != before
    finally:
        again.close()
