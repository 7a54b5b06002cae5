"""A host started from a baked image drops the baking instance's per-instance state."""

from __future__ import annotations

import json
from pathlib import Path

from ampd.daemon.reconcile import Reconciler
from ampd.gateways.paths import Paths
from ampd.gateways.store import Store, StoredState
from ampd.gateways.supervisor import Supervisor


def make(tmp_path: Path, instance_id: str) -> tuple[Reconciler, Paths]:
    state = tmp_path / "state.yml"
    state.write_text("version: 1\nmetrics: {enabled: false}\n")
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    rec = Reconciler(
        state,
        paths,
        Supervisor(),
        instance_facts=lambda: {"instance_id": instance_id, "instance_type": "t3.micro"},
    )
    return rec, paths


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
    summary = rec.run_pass(apply=True)
    assert summary.spec_error is None
    stored = json.loads(paths.store.read_text())
    assert stored["instance_id"] == "i-fresh"
    assert stored["workspace_id"] == "ws-fleet"  # fleet-wide state stays
    assert stored["client_token"] == "tok"
    assert stored["applied"] == {"aws.workspace/prod": "def"}
    assert not (paths.state_dir / "data").exists()
    rec.close()


def test_same_instance_keeps_state(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    wal = paths.state_dir / "data" / "prometheus" / "agent"
    wal.mkdir(parents=True)
    Store(paths.store).save(StoredState(instance_id="i-same", applied={"file/x": "1"}))
    rec, _ = make(tmp_path, "i-same")
    rec.run_pass(apply=True)
    assert wal.exists()
    assert json.loads(paths.store.read_text())["applied"] == {"file/x": "1"}
    rec.close()
