"""``ampd bake``: per-instance state goes, fleet-wide facts stay; idempotent; refuses to
run under a live daemon (it stops nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ampd import cli
from ampd.commands.bake import bake
from ampd.gateways.paths import Paths
from tests.engine.test_plan_contract import snapshot
from tests.engine.test_plan_contract import state as plan_contract_state
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.imds import ImdsServer

STORE = {
    "workspace_id": "ws-fleet",
    "client_token": "ampd-abc",
    "instance_id": "i-0bake000000000000",
    "applied": {
        "file/prometheus.yml": "aa",
        "file/proxy.json": "bb",
        "aws.workspace/fleet": "cc",
        "aws.iam_role/ampd-writer": "dd",
    },
    "workspace": {
        "id": "ws-fleet",
        "region": "eu-west-1",
        "remote_write_url": "https://x/workspaces/ws-fleet/api/v1/remote_write",
        "query_url": "https://x/workspaces/ws-fleet/api/v1/query",
    },
}


def baked_host(tmp_path: Path) -> Paths:
    paths = Paths(tmp_path / "state", tmp_path / "run")
    sd = paths.state_dir
    for rel in (
        "data/prometheus/agent/wal/00000000",
        "data/grafana/grafana.db",
        "generated/prometheus.yml",
        "generated/proxy.json",
        "grafana-secrets/admin-password",
        "secrets/grafana-admin-password",  # where it was before Grafana had its own user
        "source/state.yml",
        "source/source.json",
    ):
        (sd / rel).parent.mkdir(parents=True, exist_ok=True)
        (sd / rel).write_text("x")
    paths.store.write_text(json.dumps(STORE))
    paths.runtime_dir.mkdir(parents=True)
    paths.status.write_text(json.dumps({"pid": 2**22 + 12345}))  # no such process
    return paths


def test_bake_drops_per_instance_state_and_keeps_fleet_facts(tmp_path: Path) -> None:
    paths = baked_host(tmp_path)
    report = bake(paths)
    removed = " ".join(p for p, _ in report.removed)
    for gone in ("data/", "generated/", "admin-password", "status.json", "instance_id"):
        assert gone in removed
    assert "grafana-secrets/admin-password" in removed
    sd = paths.state_dir
    assert not (sd / "data").exists()
    assert not (sd / "generated").exists()
    assert not (sd / "secrets/grafana-admin-password").exists()
    assert not (sd / "grafana-secrets/admin-password").exists()
    assert not paths.status.exists()
    assert (sd / "source/state.yml").read_text() == "x"  # the cached state copy stays
    stored = json.loads(paths.store.read_text())
    assert stored["instance_id"] is None
    assert stored["workspace_id"] == "ws-fleet"
    assert stored["client_token"] == "ampd-abc"
    assert stored["applied"] == {"aws.workspace/fleet": "cc", "aws.iam_role/ampd-writer": "dd"}
    assert stored["workspace"]["id"] == "ws-fleet"
    kept = " ".join(report.kept)
    assert "workspace ws-fleet" in kept
    assert "clientToken" in kept
    assert "source/" in kept


def test_bake_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = baked_host(tmp_path)
    bake(paths)
    before = paths.store.read_bytes()
    assert bake(paths).removed == []
    assert paths.store.read_bytes() == before


def test_dry_run_removes_nothing(tmp_path: Path) -> None:
    paths = baked_host(tmp_path)
    report = bake(paths, dry_run=True)
    assert report.removed
    assert (paths.state_dir / "data/prometheus/agent/wal/00000000").exists()
    assert json.loads(paths.store.read_text())["instance_id"] == "i-0bake000000000000"


def test_bake_refuses_while_the_daemon_runs(tmp_path: Path) -> None:
    paths = baked_host(tmp_path)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        try:
            paths.status.write_text(json.dumps({"pid": child.pid}))
            with pytest.raises(Exception, match=f"ampd is running \\(pid {child.pid}\\)"):
                bake(paths)
            assert (paths.state_dir / "data").exists()  # nothing touched, nothing stopped
            assert child.poll() is None
        finally:
            child.kill()


def test_cli_bake_says_what_it_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = baked_host(tmp_path)
    monkeypatch.setenv("STATE_DIRECTORY", str(paths.state_dir))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(paths.runtime_dir))
    assert cli.main(["bake"]) == 0
    out = capsys.readouterr().out
    assert f"removed {paths.state_dir / 'data'}/" in out
    assert "kept " in out and "clientToken" in out
    assert cli.main(["bake", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["removed"] == []
    assert cli.main(["bake"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_plan_after_bake_on_a_new_instance_shows_its_labels(
    tmp_path: Path, aws_emulator_env: AwsEnv, imds: ImdsServer
) -> None:
    """Bake on instance A, boot the image as instance B: ``ampd plan`` says prometheus.yml
    is to be written with B's instance_id (exit 2), and writes nothing."""
    imds.instance_id = "i-0aaaaaaaaaaaaaaa1"
    p = AmpdProcess(tmp_path)
    p.write_state(plan_contract_state(free_port()))
    applied = p.ampd("apply", "--once")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    generated = p.state_dir / "generated" / "prometheus.yml"
    assert "i-0aaaaaaaaaaaaaaa1" in generated.read_text()
    baked = p.ampd("bake")
    assert baked.returncode == 0, baked.stdout + baked.stderr
    assert not generated.exists()

    imds.instance_id = "i-0bbbbbbbbbbbbbbb2"  # an instance started from the image
    before = snapshot(p.tmp)
    res = p.ampd("plan")
    assert snapshot(p.tmp) == before  # plan wrote nothing
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    block = res.stdout.split("file/prometheus.yml", 1)[1].split("\n+ ", 1)[0]
    assert 'external_labels: {"instance_id": null} -> {"instance_id": "i-0bbbbbbbbbbbbbbb2"}' in (
        block
    ), res.stdout
    assert "i-0aaaaaaaaaaaaaaa1" not in res.stdout


def test_bake_as_root_keeps_the_owner_of_ampd_json(tmp_path: Path) -> None:
    """``sudo ampd bake`` rewrites ampd.json; the ampd user must still own it, or the
    instances started from the image cannot read it."""
    paths = baked_host(tmp_path)
    owner = (4242, 4243) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        os.chown(paths.store, *owner)
    bake(paths)
    st = paths.store.stat()
    assert (st.st_uid, st.st_gid) == owner
    assert st.st_mode & 0o777 == 0o600
    assert json.loads(paths.store.read_text())["instance_id"] is None
