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
from ampd.commands.bake import bake, scratch_in_source, without_session_fields
from ampd.gateways.paths import Paths
from ampd.gateways.sourceref import parse_ref
from ampd.source.docs import load_cache
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


# -- an appconfig: state ------------------------------------------------------------------

TOKEN = "AYADeNgfrPmkq1BqOIuZ1vbMTWRGzD7iBFjXYrTm3R6v0EXAMPLE"
APPCONFIG_META = {
    "source": "appconfig:fleet/prod/ampd",
    "version": "v7",
    "sha256": "ab" * 32,
    "files": {
        "rules.yml": {
            "ref": "appconfig:fleet/prod/rules.yml",
            "version": "sha256:0123456789ab",
            "path": "FILES/0123-rules.yml",
        }
    },
    "saved_at": 1_800_000_000.0,
    # what a source must never keep on disk; bake drops it should one ever be there
    "session": {"configuration_token": TOKEN, "next_poll_in": 45},
    "NextPollConfigurationToken": TOKEN,
}


def appconfig_host(tmp_path: Path) -> Paths:
    """A host whose state came from AppConfig: the last good copy and its file under
    source/, with session leftovers beside it (a token in source.json and in a file of its
    own, a temporary file of an interrupted write)."""
    paths = baked_host(tmp_path)
    source = paths.state_dir / "source"
    files = source / "files"
    files.mkdir()
    (files / "0123-rules.yml").write_text("groups: []\n")
    (files / ".0123-rules.yml.x1.tmp").write_text("groups")
    meta = json.loads(json.dumps(APPCONFIG_META).replace("FILES", str(files)))
    (source / "source.json").write_text(json.dumps(meta))
    (source / "state.yml").write_text("version: 1\n")
    (source / "appconfig-session.json").write_text(json.dumps({"token": TOKEN}))
    (source / ".state.yml.abc.tmp").write_text("version")
    return paths


def files_holding(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_bake_keeps_the_appconfig_copy_and_no_session(tmp_path: Path) -> None:
    paths = appconfig_host(tmp_path)
    source = paths.state_dir / "source"
    assert files_holding(paths.state_dir, TOKEN)  # the leftovers are there to find
    report = bake(paths)
    assert files_holding(tmp_path, TOKEN) == []  # no token anywhere in the image
    assert sorted(p.name for p in source.iterdir()) == ["files", "source.json", "state.yml"]
    assert [p.name for p in (source / "files").iterdir()] == ["0123-rules.yml"]
    assert (source / "state.yml").read_text() == "version: 1\n"
    meta = json.loads((source / "source.json").read_text())
    assert sorted(meta) == ["files", "saved_at", "sha256", "source", "version"]
    assert meta["files"]["rules.yml"]["version"] == "sha256:0123456789ab"
    assert (source / "source.json").stat().st_mode & 0o777 == 0o600
    removed = " ".join(f"{p} ({why})" for p, why in report.removed)
    assert "appconfig-session.json" in removed
    assert "session, NextPollConfigurationToken" in removed
    assert "last good copy of appconfig:fleet/prod/ampd, version v7" in " ".join(report.kept)
    assert bake(paths).removed == []  # idempotent


def test_dry_run_keeps_the_session_leftovers(tmp_path: Path) -> None:
    paths = appconfig_host(tmp_path)
    before = {p: p.read_bytes() for p in paths.state_dir.rglob("*") if p.is_file()}
    report = bake(paths, dry_run=True)
    assert any("appconfig-session.json" in p for p, _ in report.removed)
    assert {p: p.read_bytes() for p in paths.state_dir.rglob("*") if p.is_file()} == before


def test_the_baked_copy_is_still_the_sources_cache(tmp_path: Path) -> None:
    """Dropping the session fields leaves a cache the source reads as before."""
    paths = baked_host(tmp_path)
    source = paths.state_dir / "source"
    (source / "state.yml").write_text("version: 1\n")
    meta = {"source": "ssm:/fleet/prod/ampd", "version": "3", "sha256": "x", "files": {}}
    (source / "source.json").write_text(json.dumps({**meta, "session_token": TOKEN}))
    bake(paths)
    cached = load_cache(source, parse_ref("ssm:/fleet/prod/ampd"))
    assert cached is not None
    doc, files = cached
    assert (doc.version, doc.data, files) == ("3", b"version: 1\n", {})


@pytest.mark.parametrize(
    ("meta", "kept", "dropped"),
    [
        ({"source": "s", "version": "1"}, {"source": "s", "version": "1"}, []),
        ({"token": "t", "v": 1}, {"v": 1}, ["token"]),
        ({"a": {"SessionId": "x", "b": 2}}, {"a": {"b": 2}}, ["a.SessionId"]),
        ({"a": [{"next_token": 1}, {"c": 3}]}, {"a": [{}, {"c": 3}]}, ["a[0].next_token"]),
        ([1, "token"], [1, "token"], []),  # values are not field names
    ],
)
def test_session_fields(meta: object, kept: object, dropped: list[str]) -> None:
    assert without_session_fields(meta) == (kept, dropped)


def test_scratch_in_source() -> None:
    names = ["state.yml", "source.json", "files", "accepted.json", "session", ".a.tmp"]
    assert scratch_in_source(names) == [".a.tmp", "session"]
