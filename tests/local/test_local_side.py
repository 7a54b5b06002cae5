"""The local side in four steps (ampd.engine.side): a plan touches nothing and needs no
control of the processes; the configuration-reload state is the side's own reading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ampd.core import Action, Command, ConditionStatus, Kind, ProcessState, ResourceKey, SyncStatus
from ampd.engine.facts import Facts
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import RuntimeView
from ampd.gateways.store import Store, StoredState, StoreView
from ampd.local.render.context import WorkspaceFacts
from ampd.local.side.side import LocalSide
from ampd.spec.models import StateSpec
from tests.harness.promstub import PromStub, prom_stub
from tests.local.passes import LookOnly, RecordingRuntime, applied, planned

AMP = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1"
FACTS = Facts(instance_labels={"instance_id": "i-0abc"}, prometheus_version=(2, 53, 0))


def state(listen: str = "127.0.0.1:9090") -> StateSpec:
    return StateSpec.model_validate(
        {"version": 1, "prometheus": {"listen": listen}, "metrics": {"enabled": False}}
    )


class Untouchable(LookOnly):
    """A full runtime whose every control method raises, and is recorded."""

    def __init__(self, running: bool = False) -> None:
        super().__init__(running)
        self.controlled: list[str] = []

    def _refuse(self, what: str) -> None:
        self.controlled.append(what)
        raise AssertionError(f"a plan called {what}")

    def start(self, command: Command) -> None:
        self._refuse("start")

    def stop(self, name: str, timeout: float = 10.0) -> None:
        self._refuse("stop")

    def restart(self, command: Command) -> None:
        self._refuse("restart")

    def reload(self, name: str) -> None:
        self._refuse("reload")

    def forget_data(self, name: str) -> None:
        self._refuse("forget_data")

    def set_imds(self, name: str, allowed: bool) -> None:
        self._refuse("set_imds")

    def shutdown(self, timeout: float = 15.0) -> None:
        self._refuse("shutdown")


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(tmp_path / "lib", tmp_path / "run")
    p.generated.mkdir(parents=True)
    return p


def test_a_plan_writes_nothing_and_controls_no_process(paths: Paths) -> None:
    """A baked host's plan (another instance recorded, a stale file on disk, Prometheus
    running on other flags): every change is pending, and nothing is touched."""
    (paths.generated / "prometheus.yml").write_bytes(b"global: {}\n")
    wal = paths.state_dir / "data" / "prometheus" / "wal"
    wal.mkdir(parents=True)
    (wal / "00000001").write_bytes(b"samples")
    Store(paths.store).save(
        StoredState(instance_id="i-baker", applied={"file/prometheus.yml": "0" * 64})
    )
    before = snapshot(paths.state_dir)
    runtime = Untouchable(running=True)
    side = LocalSide(paths, runtime, StoreView(paths.store), state_path="/etc/ampd/state.yml")

    result = planned(side, state(), FACTS)

    assert snapshot(paths.state_dir) == before  # no file, no ampd.json, no wiped data
    assert runtime.controlled == []
    assert set(runtime.observed) >= {"prometheus", "sigv4-proxy", "grafana"}
    changes = {c.key: c.action for c in result.plan.changes}
    assert changes[ResourceKey(Kind.FILE, "prometheus.cmd.json")] is Action.CREATE
    assert changes[ResourceKey(Kind.FILE, "prometheus.yml")] is Action.UPDATE
    # the new instance's plan starts the Prometheus whose data the wipe stops
    assert changes[ResourceKey(Kind.PROCESS, "prometheus")] is Action.CREATE
    assert result.outcomes == ()
    pending = {s.key for s in result.statuses if s.sync is SyncStatus.OUT_OF_SYNC}
    assert ResourceKey(Kind.FILE, "prometheus.yml") in pending


def test_the_side_takes_a_runtime_it_can_only_look_at(paths: Paths) -> None:
    runtime: RuntimeView = LookOnly()  # no start, stop, reload, forget_data, set_imds
    side = LocalSide(paths, runtime, StoreView(paths.store), state_path="/etc/ampd/state.yml")
    assert side.name == "local"
    seen = side.observe(state(), FACTS)
    plan = side.plan(state(), FACTS, seen)
    assert seen.probed.processes["prometheus"].running is False
    assert plan.plan.changes  # files to create, Prometheus to start
    result = side.report(state(), FACTS, seen, plan, None)
    assert result.plan == plan.plan
    assert not paths.store.exists()
    assert snapshot(paths.generated) == {}


@pytest.fixture
def prom() -> Iterator[PromStub]:
    with prom_stub() as stub:
        yield stub


def loaded(conditions: Any) -> Any:
    [cond] = [c for c in conditions if c.type == "PrometheusConfigLoaded"]
    return cond


def test_the_config_reload_state_is_the_local_sides_reading(paths: Paths, prom: PromStub) -> None:
    """A reload that failed outside ampd (a hand-sent SIGHUP) shows in Prometheus' own
    metrics; the side reads it when it observes, in a plan as in an applying pass."""
    runtime = LookOnly(running=True, argv=("prometheus", f"--web.listen-address={prom.listen}"))
    side = LocalSide(paths, runtime, StoreView(paths.store), state_path="/etc/ampd/state.yml")
    prom.successful = 0
    seen = side.observe(state(prom.listen), FACTS)
    assert seen.probed.config_loaded is not None
    assert seen.probed.config_loaded.status is ConditionStatus.FALSE
    cond = loaded(planned(side, state(prom.listen), FACTS).conditions)
    assert (cond.status, cond.reason) == (ConditionStatus.FALSE, "ReloadFailed")
    prom.successful = 1
    assert loaded(planned(side, state(prom.listen), FACTS).conditions).status is (
        ConditionStatus.TRUE
    )


def test_no_config_reload_state_without_a_healthy_prometheus(paths: Paths) -> None:
    side = LocalSide(paths, LookOnly(), StoreView(paths.store), state_path="/etc/ampd/state.yml")
    result = planned(side, state(), FACTS)
    assert [c for c in result.conditions if c.type == "PrometheusConfigLoaded"] == []


def test_an_applying_pass_writes_through_the_writers_it_is_handed(paths: Paths) -> None:
    runtime = RecordingRuntime()
    store = Store(paths.store)
    side = LocalSide(paths, LookOnly(), StoreView(paths.store), state_path="/etc/ampd/state.yml")
    spec = state().model_copy(
        update={"prometheus": state().prometheus.model_copy(update={"binary": "/bin/true"})}  # type: ignore[union-attr]
    )
    result = applied(side, spec, FACTS, store, runtime)
    assert ("start", "prometheus") in runtime.calls  # through the handed control only
    assert (paths.generated / "prometheus.cmd.json").exists()
    recorded = store.load()
    assert recorded.instance_id == "i-0abc"
    assert "file/prometheus.cmd.json" in recorded.applied
    assert all(o.ok for o in result.outcomes if o.change.key.kind is Kind.FILE)


def test_the_native_signing_latch_is_the_local_sides(paths: Paths, prom: PromStub) -> None:
    """A Prometheus whose version says it signs, whose writes are all refused: the side
    latches, and plans the proxy from then on (the facts know only the version)."""
    ws = WorkspaceFacts("ws-1", "eu-west-1", f"{AMP}/api/v1/remote_write", f"{AMP}/api/v1/query")
    facts = Facts(workspace=ws, prometheus_version=(2, 53, 0))
    spec = StateSpec.model_validate(
        {
            "version": 1,
            "workspace": {"alias": "a"},
            "prometheus": {"listen": prom.listen, "remote_write": {"signing": "auto"}},
            "metrics": {"enabled": False},
        }
    )
    runtime = LookOnly(running=True, argv=("prometheus", f"--web.listen-address={prom.listen}"))
    side = LocalSide(paths, runtime, StoreView(paths.store), state_path="/etc/ampd/state.yml")
    assert facts.prometheus_can_sign
    first = side.plan(spec, facts, side.observe(spec, facts))
    assert "sigv4-proxy.cmd.json" not in first.rendered  # it signs itself
    prom.failed = 10
    seen = side.observe(spec, facts)
    assert seen.native_failed and side.native_failed
    assert seen.flow is not None and seen.flow.reason == "SamplesRejected"
    assert "sigv4-proxy.cmd.json" in side.plan(spec, facts, seen).rendered
    assert facts.prometheus_can_sign  # the facts never hold the latch
    prom.failed = 0
    assert "sigv4-proxy.cmd.json" in side.plan(spec, facts, side.observe(spec, facts)).rendered


class Running(RecordingRuntime):
    """Runs what it starts, with the command it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: dict[str, Command] = {}

    def start(self, command: Command) -> None:
        super().start(command)
        self.commands[command.name] = command

    def observe(self, name: str) -> ProcessState:
        self.observed.append(name)
        cmd = self.commands.get(name)
        return ProcessState(name, running=cmd is not None, pid=4242, command=cmd)


def test_a_pass_that_changes_nothing_reads_the_processes_once(paths: Paths) -> None:
    runtime = Running()
    store = Store(paths.store)
    side = LocalSide(paths, runtime, StoreView(paths.store), state_path="/etc/ampd/state.yml")
    prom = state("127.0.0.1:9").prometheus
    assert prom is not None
    spec = state().model_copy(
        update={"prometheus": prom.model_copy(update={"binary": "/bin/true"})}
    )
    first = applied(side, spec, FACTS, store, runtime)
    assert first.outcomes and all(o.ok for o in first.outcomes)
    assert sorted(runtime.observed) != sorted(set(runtime.observed))  # read back after acting
    runtime.observed.clear()
    runtime.calls.clear()
    again = applied(side, spec, FACTS, store, runtime)
    assert again.outcomes == () and runtime.calls == []
    assert sorted(runtime.observed) == ["grafana", "prometheus", "sigv4-proxy"]
    [prom_status] = [s for s in again.statuses if s.key == ResourceKey(Kind.PROCESS, "prometheus")]
    assert prom_status.sync is SyncStatus.SYNCED
