"""Grafana rendering (pure) checked field by field against Grafana's documented formats,
and the version probe against small executables."""

from __future__ import annotations

import base64
import configparser
import json
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ampd.gateways import grafana as grafana_gw
from ampd.gateways.files import FileWriter
from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.files import render_all
from ampd.local.render.grafana import AMP_PLUGIN, bundled_dashboards
from ampd.spec.models import StateSpec
from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_local import free_port
from tests.harness.grafana_standin import check_datasource
from tests.harness.wait import wait_for

STANDIN = Path(__file__).parents[1] / "harness" / "grafana_standin.py"

BASE = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1"
WS = WorkspaceFacts("ws-1", "eu-west-1", f"{BASE}/api/v1/remote_write", f"{BASE}/api/v1/query")
ROLE = "arn:aws:iam::123456789012:role/reader"


def render(grafana: dict[str, Any], major: int | None, **extra: Any) -> dict[str, bytes]:
    spec = StateSpec.model_validate(
        {"version": 1, "workspace": {"alias": "a"}, "grafana": {"enabled": True, **grafana}} | extra
    )
    ctx = RenderContext(
        source="/etc/ampd/state.yml", state_dir="/var/lib/ampd", workspace=WS, grafana_major=major
    )
    return {r.name: r.data for r in render_all(spec, ctx)}


def datasource(files: dict[str, bytes]) -> dict[str, Any]:
    doc = yaml.safe_load(files["grafana/provisioning/datasources/ampd.yaml"])
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    return dict(ds)


def ini(files: dict[str, bytes]) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read_string(files["grafana/grafana.ini"].decode())
    return cp


@pytest.mark.parametrize(
    ("major", "auth", "role", "want_type", "want_auth"),
    [
        (None, "ec2_iam_role", None, "prometheus", "ec2_iam_role"),
        (10, "default", None, "prometheus", "default"),
        (11, "ec2_iam_role", ROLE, "prometheus", "ec2_iam_role"),
        (12, "ec2_iam_role", None, AMP_PLUGIN, "ec2_iam_role"),
        (12, "default", ROLE, AMP_PLUGIN, "default"),
        (13, "ec2_iam_role", ROLE, AMP_PLUGIN, "ec2_iam_role"),
    ],
)
def test_direct_datasource_per_grafana_version(
    major: int | None, auth: str, role: str | None, want_type: str, want_auth: str
) -> None:
    files = render({"datasource": {"auth": auth, "assume_role_arn": role}}, major)
    ds = datasource(files)
    assert ds["type"] == want_type
    assert ds["uid"] == "ampd-amp"
    assert ds["access"] == "proxy"
    assert ds["url"] == BASE  # the workspace prefix; Grafana appends /api/v1/query itself
    assert ds["isDefault"] is True
    assert ds["editable"] is False
    jd = ds["jsonData"]
    assert jd["sigV4Auth"] is True  # a YAML/JSON boolean, not the string "true"
    assert jd["sigV4AuthType"] == want_auth
    assert jd["sigV4Region"] == "eu-west-1"
    assert jd["httpMethod"] == "POST"
    assert jd.get("sigV4AssumeRoleArn") == role
    # The plugin keeps the sigV4* keys; CloudWatch-style keys would be ignored.
    assert not {"authType", "defaultRegion", "assumeRoleArn"} & set(jd)
    assert jd.get("sigv4Service") == ("aps" if want_type == AMP_PLUGIN else None)
    assert "secureJsonData" not in ds
    cp = ini(files)
    assert cp.getboolean("auth", "sigv4_auth_enabled") is True
    allowed = cp.get("aws", "allowed_auth_providers").split(",")
    assert want_auth in allowed
    assert cp.getboolean("aws", "assume_role_enabled") is (role is not None)
    preinstall = cp.get("plugins", "preinstall", fallback="")
    assert (AMP_PLUGIN in preinstall) is (want_type == AMP_PLUGIN)
    assert check_datasource(ds, set(allowed)) == []


def test_keys_come_from_the_credentials_file_never_the_generated_files() -> None:
    cred = "/etc/ampd/grafana-aws-credentials"
    files = render({"datasource": {"auth": "keys", "credentials_file": cred}}, 11)
    jd = datasource(files)["jsonData"]
    assert jd["sigV4AuthType"] == "credentials"
    assert jd["sigV4Profile"] == "default"
    assert "credentials" in ini(files).get("aws", "allowed_auth_providers").split(",")
    cmd = json.loads(files["grafana.cmd.json"])
    assert cmd["env"] == {"AWS_SHARED_CREDENTIALS_FILE": cred}
    for data in files.values():
        assert b"sigV4AccessKey" not in data
        assert b"sigV4SecretKey" not in data
        assert b"secureJsonData" not in data


def test_via_proxy_points_at_the_loopback_proxy_without_signing() -> None:
    files = render({"datasource": {"via": "proxy"}}, 13, proxy={"listen": "127.0.0.1:8015"})
    ds = datasource(files)
    assert ds["type"] == "prometheus"  # the proxy signs: no plugin needed, even on 13
    assert ds["url"] == "http://127.0.0.1:8015/workspaces/ws-1"
    assert "sigV4Auth" not in ds["jsonData"]
    assert check_datasource(ds, set()) == []


def test_settings_listen_paths_and_admin() -> None:
    files = render({"listen": "127.0.0.1:3999", "dashboards": ["/etc/ampd/dashboards/"]}, 11)
    cp = ini(files)
    assert (cp.get("server", "http_addr"), cp.getint("server", "http_port")) == ("127.0.0.1", 3999)
    for key in ("data", "logs", "plugins", "provisioning"):
        assert cp.get("paths", key).startswith("/var/lib/ampd/")
    assert cp.get("security", "admin_password") == (
        "$__file{/var/lib/ampd/grafana-secrets/admin-password}"
    )
    assert cp.getboolean("auth.anonymous", "enabled") is False
    cmd = json.loads(files["grafana.cmd.json"])
    assert cmd["argv"] == [
        "/usr/sbin/grafana-server",
        "--config=/var/lib/ampd/generated/grafana/grafana.ini",
    ]
    prov = yaml.safe_load(files["grafana/provisioning/dashboards/ampd.yaml"])
    paths = [p["options"]["path"] for p in prov["providers"]]
    assert paths == ["/var/lib/ampd/generated/grafana/dashboards", "/etc/ampd/dashboards/"]
    assert all(
        p["type"] == "file" and isinstance(p["disableDeletion"], bool) for p in prov["providers"]
    )


def test_single_grafana_binary_runs_the_server_subcommand() -> None:
    files = render({"binary": "/usr/share/grafana/bin/grafana"}, 12)
    assert json.loads(files["grafana.cmd.json"])["argv"][:2] == [
        "/usr/share/grafana/bin/grafana",
        "server",
    ]


def test_bundled_dashboards_are_rendered_and_use_the_datasource() -> None:
    files = render({}, 11)
    names = {n for n in files if n.startswith("grafana/dashboards/")}
    assert names == {"grafana/dashboards/ampd-host.json", "grafana/dashboards/ampd.json"}
    uids = set()
    for name in names:
        d = json.loads(files[name])
        uids.add(d["uid"])
        assert d["panels"]
        for p in d["panels"]:
            assert p["datasource"] == {"uid": "ampd-amp"}
            assert p["targets"] and all(t["expr"] for t in p["targets"])
    assert uids == {"ampd-host", "ampd-self"}
    exprs = " ".join(dashboard_exprs())
    for metric in (
        "up",
        "scrape_duration_seconds",
        "ampd_reconcile_total",
        "ampd_drift_detected_total",
        "ampd_aws_api_calls_total",
        "prometheus_remote_storage_samples_total",
    ):
        assert metric in exprs


def dashboard_exprs() -> list[str]:
    return [
        t["expr"]
        for data in bundled_dashboards().values()
        for p in json.loads(data)["panels"]
        for t in p["targets"]
    ]


@pytest.mark.parametrize(
    ("ds", "problem"),
    [
        ({"jsonData": {"sigV4Auth": "true"}}, "sigV4Auth: must be a boolean"),
        ({"jsonData": {"sigV4Auth": True, "sigV4AuthType": "workspace-iam-role"}}, "unknown"),
        ({"jsonData": {"sigV4Auth": True, "sigV4AuthType": "ec2_iam_role"}}, "sigV4Region"),
        ({"isDefault": "yes"}, "isDefault: must be a boolean"),
    ],
)
def test_the_standin_validator_catches_the_format_traps(ds: dict[str, Any], problem: str) -> None:
    entry = {"name": "x", "type": "prometheus", "url": "http://x"} | ds
    assert any(problem in p for p in check_datasource(entry, {"ec2_iam_role"}))


def fake_binary(path: Path, script: str) -> str:
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_version_probe(tmp_path: Path) -> None:
    bin_dir = trusted_dir()  # ampd runs only root's binaries (tests/harness/execdir.py)
    old = fake_binary(
        bin_dir / "grafana-server", 'echo "Version 10.4.2 (commit: abc, branch: HEAD)"'
    )
    assert grafana_gw.grafana_version(old) == (10, 4, 2)
    (bin_dir / "new").mkdir()
    new = fake_binary(
        bin_dir / "new" / "grafana",
        '[ "$1" = server ] && echo "Version 12.0.2 (commit: x)" || exit 2',
    )
    assert grafana_gw.grafana_major(new) == 12
    assert grafana_gw.grafana_major(str(tmp_path / "missing")) is None
    standin = fake_binary(
        bin_dir / "standin",
        f"GRAFANA_STANDIN_VERSION=13.1.0 exec {sys.executable} "
        f'{Path(__file__).parents[1] / "harness" / "grafana_standin.py"} "$@"',
    )
    assert grafana_gw.grafana_version(standin) == (13, 1, 0)


def test_provisioned_values_reach_grafana_literally_never_expanded(tmp_path: Path) -> None:
    """Grafana interpolates every provisioning value ($VAR, ${VAR}, $__env{}, $__file{});
    ampd writes $ as $$, so a hostile data source name or dashboard path is shown as
    written, and the admin password file it names stays unread. The stand-in expands
    as Grafana does (tests/harness/grafana_standin.py: interpolate)."""
    state_dir = tmp_path / "state"
    secret = grafana_gw.ensure_admin_password(state_dir, FileWriter())
    name = (
        f"$__file{{{state_dir}/grafana-secrets/admin-password}} $HOME ${{PATH}} $__env{{HOME}} $$"
    )
    dashboards = tmp_path / "dash$HOME"
    dashboards.mkdir()
    (dashboards / "d.json").write_text(json.dumps({"uid": "u1", "title": "mine"}))
    port = free_port()
    spec = StateSpec.model_validate(
        {
            "version": 1,
            "workspace": {"alias": "a"},
            "grafana": {
                "enabled": True,
                "listen": f"127.0.0.1:{port}",
                "datasource": {"name": name},
                "dashboards": [str(dashboards)],
            },
        }
    )
    ctx = RenderContext(
        source="/etc/ampd/state.yml", state_dir=str(state_dir), workspace=WS, grafana_major=11
    )
    for r in render_all(spec, ctx):
        out = state_dir / "generated" / r.name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(r.data)
    ini_path = state_dir / "generated" / "grafana" / "grafana.ini"
    log = tmp_path / "standin.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, str(STANDIN), f"--config={ini_path}"], stderr=err)
    try:
        token = base64.b64encode(f"admin:{secret}".encode()).decode()

        def get(path: str) -> Any:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
            req.add_header("Authorization", f"Basic {token}")
            try:
                with urllib.request.urlopen(req, timeout=2) as resp:
                    return json.loads(resp.read())
            except OSError:
                assert proc.poll() is None, log.read_text()
                return None

        listed = wait_for(lambda: get("/api/datasources"), what="the stand-in's data source list")
        assert [ds["name"] for ds in listed] == [name]
        assert secret not in json.dumps(listed)
        found = get("/api/search")
        assert {"uid": "u1", "title": "mine", "folder": ""} in found
    finally:
        proc.terminate()
        proc.wait(timeout=10)
