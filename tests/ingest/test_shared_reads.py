"""Prometheus' own /metrics is read once a pass: the local side (its reload state and
the remote-write evidence) and the ingest side (its measured rate, its active series and
the ``prometheus`` job's series) share the pass's one owner-checked read
(``Facts.reads``); the next pass reads it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ampd.core import ConditionStatus, WorkspaceRecord
from ampd.engine.factfinder import FactFinder, OwnedReads
from ampd.engine.facts import Facts
from ampd.gateways.http import HttpResult
from ampd.gateways.paths import Paths
from ampd.gateways.store import StoreView
from ampd.gateways.users import process_user
from ampd.ingest.gateway import Fetched, owned_metrics
from ampd.ingest.observe import Observer
from ampd.local.observe.seen import LocalEyes
from ampd.local.side.side import LocalSide
from ampd.spec.models import StateSpec
from tests.harness.promstub import PromStub, prom_stub
from tests.local.passes import LookOnly

WS = WorkspaceRecord.at("ws-1", "eu-west-1")


@pytest.fixture
def prom() -> Iterator[PromStub]:
    with prom_stub() as stub:
        stub.extra = "prometheus_agent_active_series 42\nprocess_start_time_seconds 1\n"
        yield stub


def _spec(listen: str) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "aws": {"region": "eu-west-1"},
            "workspace": {"id": "ws-1"},
            "prometheus": {"listen": listen, "remote_write": {"signing": "proxy"}},
            "metrics": {"enabled": False},
        }
    )


def _local(tmp_path: Path, listen: str) -> tuple[LocalSide, LocalEyes]:
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    paths.generated.mkdir(parents=True)
    runtime = LookOnly(running=True, argv=("prometheus", f"--web.listen-address={listen}"))
    view = StoreView(paths.store)
    side = LocalSide(paths, runtime, view, state_path="/etc/ampd/state.yml")
    return side, LocalEyes(runtime, view, paths.generated, True)


def _ingest(tmp_path: Path) -> Observer:
    uid = process_user("prometheus", "supervisor").uid

    def metrics(url: str) -> Fetched:
        return owned_metrics(url, uid)

    return Observer(
        tmp_path, StoreView(tmp_path / "ampd.json"), metrics=metrics, ask_prices=lambda *_: []
    )


def _observe_local(side: LocalSide, spec: StateSpec, facts: Facts) -> None:
    """The local side's observe step, as the pass runs it (handed the pass's reads)."""
    seen = side.observe(spec, facts)
    assert seen.probed.config_loaded is not None  # the reload state was read ...
    assert seen.probed.config_loaded.status is ConditionStatus.TRUE
    assert seen.flow is not None and seen.flow.reason != "NoMetrics"  # ... and the evidence


def test_one_pass_gets_prometheus_metrics_once_for_both_sides(
    tmp_path: Path, prom: PromStub
) -> None:
    spec = _spec(prom.listen)
    side, _ = _local(tmp_path, prom.listen)
    observer = _ingest(tmp_path)
    finder = FactFinder(StoreView(tmp_path / "ampd.json"), None)

    facts = finder.gather(spec).with_workspace(WS)
    _observe_local(side, spec, facts)
    seen = observer.observe(spec, facts, 1)
    assert prom.count("/metrics") == 1  # not 2 (or 4: reload state, evidence, rate, job)
    assert seen.measured.active_series == 42  # the ingest side read it: from the pass's read
    assert seen.scrapes[("prometheus", prom.listen)] == 6  # its job too (a settled one)

    facts = finder.gather(spec).with_workspace(WS)  # the next pass reads it again, once
    _observe_local(side, spec, facts)
    observer.observe(spec, facts, 1)
    assert prom.count("/metrics") == 2


def test_without_shared_reads_the_local_side_alone_reads_it_once(
    tmp_path: Path, prom: PromStub
) -> None:
    """LocalSide.observe as it stands: its reload state and its remote-write evidence
    share one read within the step."""
    spec = _spec(prom.listen)
    side, _ = _local(tmp_path, prom.listen)
    seen = side.observe(spec, Facts(workspace=WS))
    assert seen.probed.config_loaded is not None and seen.flow is not None
    assert prom.count("/metrics") == 1


def test_a_read_checked_for_one_owner_is_not_handed_to_another() -> None:
    asked: list[tuple[str, int]] = []

    def fetch(url: str, owner: int) -> HttpResult:
        asked.append((url, owner))
        return HttpResult(200, f"read for {owner}")

    reads = OwnedReads(fetch)
    assert reads.get("http://127.0.0.1:9090/metrics", 7).body == "read for 7"
    assert reads.get("http://127.0.0.1:9090/metrics", 7).body == "read for 7"
    assert reads.get("http://127.0.0.1:9090/metrics", 8).body == "read for 8"
    assert len(asked) == 2
    reads.new_pass()
    reads.get("http://127.0.0.1:9090/metrics", 7)
    assert len(asked) == 3
