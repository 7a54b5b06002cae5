"""A host started from a baked image drops the baking instance's per-instance state."""

from __future__ import annotations

import json
from pathlib import Path

from ampd.core import ConditionStatus
from ampd.engine.reconcile import Reconciler
from ampd.engine.status import overall
from ampd.errors import TemporaryError
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Runtime
from ampd.gateways.store import Store, StoredState
from ampd.gateways.supervisor import Supervisor
from ampd.wiring import Writers, reconciler


def make(
    tmp_path: Path, instance_id: str, runtime: Runtime | None = None
) -> tuple[Reconciler[Writers], Paths]:
    state = tmp_path / "state.yml"
    state.write_text("version: 1\nmetrics: {enabled: false}\n")
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    rec = reconciler(
        state,
        paths,
        runtime if runtime is not None else Supervisor(paths=paths),
        instance_facts=lambda: {"instance_id": instance_id, "instance_type": "t3.micro"},
    )
    return rec, paths


class KeepingSupervisor(Supervisor):
    """A supervisor whose removal of Grafana's data fails while ``keep`` is set (a child
    user's files the daemon may not remove)."""

    def __init__(self, paths: Paths) -> None:
        super().__init__(paths=paths)
        self.keep = True
        self.forgotten: list[str] = []

    def forget_data(self, name: str) -> None:
        if name == "grafana" and self.keep:
            raise TemporaryError("grafana: cannot remove its data: Permission denied", 30)
        super().forget_data(name)
        self.forgotten.append(name)


def test_new_instance_drops_per_instance_state(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    wal = paths.state_dir / "data" / "prometheus" / "agent" / "wal"
    wal.mkdir(parents=True)
    (wal / "00000001").write_bytes(b"samples of the baking instance")
    Store(paths.store).save(
        StoredState(
            workspace_id="ws-fleet",
            client_token="tok",
            instance_id="i-baker",
            applied={"file/prometheus.yml": "abc", "aws.workspace/prod": "def"},
        )
    )
    rec, _ = make(tmp_path, "i-fresh")
    summary = rec.run_pass()
    assert summary.spec_error is None
    stored = json.loads(paths.store.read_text())
    assert stored["instance_id"] == "i-fresh"
    assert stored["workspace_id"] == "ws-fleet"  # fleet-wide state stays
    assert stored["client_token"] == "tok"
    assert stored["applied"] == {"aws.workspace/prod": "def"}
    assert not (paths.state_dir / "data").exists()
    dropped = summary.conditions["InstanceDataDropped"]
    assert dropped.status is ConditionStatus.TRUE and "i-baker" in dropped.message
    rec.close()


def test_data_that_cannot_be_removed_is_reported_and_tried_again(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    data = paths.state_dir / "data"
    (data / "prometheus" / "wal").mkdir(parents=True)
    (data / "grafana").mkdir(parents=True)
    (data / "grafana" / "grafana.db").write_bytes(b"the baking instance's")
    (data / "other").write_bytes(b"x")
    Store(paths.store).save(
        StoredState(instance_id="i-baker", applied={"file/prometheus.yml": "abc"})
    )
    runtime = KeepingSupervisor(paths)
    rec, _ = make(tmp_path, "i-fresh", runtime)
    summary = rec.run_pass()
    kept = summary.conditions["InstanceDataDropped"]
    assert kept.status is ConditionStatus.FALSE, kept
    assert "grafana" in kept.message and "Permission denied" in kept.message
    assert overall(summary)[1].value == "Degraded"
    stored = json.loads(paths.store.read_text())
    assert stored["instance_id"] == "i-baker"  # not recorded: the next pass tries again
    assert (data / "grafana" / "grafana.db").exists()
    assert not (data / "prometheus").exists() and not (data / "other").exists()

    runtime.keep = False
    summary = rec.run_pass()
    assert summary.conditions["InstanceDataDropped"].status is ConditionStatus.TRUE
    assert json.loads(paths.store.read_text())["instance_id"] == "i-fresh"
    assert not data.exists()
    assert runtime.forgotten == ["prometheus", "prometheus", "grafana"]
    rec.close()


def test_same_instance_keeps_state(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    wal = paths.state_dir / "data" / "prometheus" / "agent"
    wal.mkdir(parents=True)
    Store(paths.store).save(StoredState(instance_id="i-same", applied={"file/x": "1"}))
    rec, _ = make(tmp_path, "i-same")
    rec.run_pass()
    assert wal.exists()
    assert json.loads(paths.store.read_text())["applied"] == {"file/x": "1"}
    rec.close()
