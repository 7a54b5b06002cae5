"""render/: every template branch, deterministic bytes, and every prometheus.yml variant
through the real ``promtool check config``."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.files import (
    prometheus_argv,
    proxy_argv,
    proxy_settings,
    queue_fingerprint,
    render_all,
    render_prometheus,
    signing_mode,
)
from ampd.local.render.grafana import AMP_PLUGIN, DATASOURCE_UID, datasource, grafana_ini
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec
from tests.harness.prombins import PromBin

STATE = "/etc/ampd/state.yml"
STATE_DIR = "/var/lib/ampd"
BASE = "https://aps-workspaces.eu-west-1.amazonaws.com"
FACTS = WorkspaceFacts(
    id="ws-1234",
    region="eu-west-1",
    remote_write_url=f"{BASE}/workspaces/ws-1234/api/v1/remote_write",
    query_url=f"{BASE}/workspaces/ws-1234/api/v1/query",
)
ROLE = "arn:aws:iam::111122223333:role/ampd-writer"
READER = "arn:aws:iam::111122223333:role/ampd-reader"
WS = {"alias": "w"}
INSTANCE = {"instance_id": "i-0abc", "availability_zone": "eu-west-1a", "region": "eu-west-1"}


def spec(**sections: Any) -> StateSpec:
    text = yaml.safe_dump({"version": 1, **sections}, sort_keys=False)
    return load_spec(text, STATE).spec


def ctx(**kw: Any) -> RenderContext:
    base = RenderContext(source=STATE, state_dir=STATE_DIR, workspace=FACTS)
    return replace(base, **kw)


def prom_doc(s: StateSpec, c: RenderContext) -> dict[str, Any]:
    data = yaml.safe_load(render_prometheus(s, c))
    assert isinstance(data, dict)
    return data


def by_name(s: StateSpec, c: RenderContext) -> dict[str, bytes]:
    return {r.name: r.data for r in render_all(s, c)}


# ---------------------------------------------------------------------------------------
# prometheus.yml variants: (id, spec sections, context changes, expected remote_write)

QUEUE = {"capacity": 10000, "max_samples_per_send": 2000, "retry_on_http_429": True}
VIA_PROXY = {
    "name": "amp",
    "url": "http://127.0.0.1:8005/workspaces/ws-1234/api/v1/remote_write",
    "queue_config": QUEUE,
}
NATIVE = {
    "name": "amp",
    "url": FACTS.remote_write_url,
    "sigv4": {"region": "eu-west-1"},
    "queue_config": QUEUE,
}

VARIANTS: list[tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]] | None]] = [
    (
        "agent-auto-old-prometheus-uses-proxy",
        {"workspace": WS, "prometheus": {}, "proxy": {}},
        {"prometheus_can_sign": False},
        [VIA_PROXY],
    ),
    (
        "agent-auto-new-prometheus-signs",
        {"workspace": WS, "prometheus": {}, "proxy": {}},
        {"prometheus_can_sign": True},
        [NATIVE],
    ),
    (
        "native-without-proxy-section",
        {"workspace": WS, "prometheus": {"remote_write": {"signing": "native"}}},
        {},
        [NATIVE],
    ),
    (
        "native-with-role-arn",
        {
            "workspace": WS,
            "prometheus": {"remote_write": {"signing": "native"}},
            "proxy": {"assume_role_arn": ROLE},
        },
        {},
        [{**NATIVE, "sigv4": {"region": "eu-west-1", "role_arn": ROLE}}],
    ),
    (
        "proxy-forced-on-new-prometheus",
        {
            "workspace": WS,
            "prometheus": {"remote_write": {"signing": "proxy"}},
            "proxy": {"listen": "127.0.0.1:18005"},
        },
        {"prometheus_can_sign": True},
        [{**VIA_PROXY, "url": "http://127.0.0.1:18005/workspaces/ws-1234/api/v1/remote_write"}],
    ),
    (
        "queue-with-max-shards",
        {
            "workspace": WS,
            "prometheus": {
                "remote_write": {
                    "signing": "native",
                    "queue": {"capacity": 500, "max_samples_per_send": 100, "max_shards": 4},
                }
            },
        },
        {},
        [
            {
                **NATIVE,
                "queue_config": {
                    "capacity": 500,
                    "max_samples_per_send": 100,
                    "max_shards": 4,
                    "retry_on_http_429": True,
                },
            }
        ],
    ),
    (
        "no-workspace-yet",
        {"workspace": WS, "prometheus": {}, "proxy": {}},
        {"workspace": None},
        None,
    ),
    (
        "local-only",
        {"prometheus": {"remote_write": None}},
        {},
        None,
    ),
    (
        "server-mode-with-retention",
        {
            "workspace": WS,
            "prometheus": {"mode": "server", "retention": "30d", "external_labels": {"a": "b"}},
            "proxy": {},
        },
        {},
        [VIA_PROXY],
    ),
    (
        "everything",
        {
            "workspace": WS,
            "aws": {"drift": "report"},
            "prometheus": {
                "scrape_interval": "30s",
                "external_labels": {"cluster": "prod", "env": 'with "quotes"'},
                "instance_labels": ["instance_id", "availability_zone", "instance_type"],
                "scrape_configs": [
                    {
                        "job": "app",
                        "targets": ["127.0.0.1:8080", "[::1]:8081"],
                        "metrics_path": "/custom/metrics",
                        "interval": "5s",
                        "scheme": "https",
                        "labels": {"team": "platform", "tier": "a: b"},
                    },
                    {"job": "node", "targets": ["localhost:9100"]},
                ],
                "remote_write": {"signing": "native"},
            },
            "metrics": {"scrape": False},
        },
        {"instance_labels": INSTANCE},
        [NATIVE],
    ),
    (
        "scrape-limits-agent",
        {
            "workspace": WS,
            "prometheus": {
                "scrape_configs": [
                    {
                        "job": "app",
                        "targets": ["127.0.0.1:8080"],
                        "sample_limit": 5000,
                        "label_limit": 30,
                        "label_value_length_limit": 200,
                    },
                    {"job": "unlimited", "targets": ["127.0.0.1:8081"], "sample_limit": 0},
                ],
                "remote_write": {"signing": "native"},
            },
        },
        {},
        [NATIVE],
    ),
    (
        "scrape-limits-server",
        {
            "prometheus": {
                "mode": "server",
                "scrape_configs": [
                    {"job": "app", "targets": ["127.0.0.1:8080"], "sample_limit": 1}
                ],
                "remote_write": None,
            },
        },
        {},
        None,
    ),
]


@pytest.mark.parametrize(
    ("sections", "changes", "remote_write"),
    [pytest.param(v[1], v[2], v[3], id=v[0]) for v in VARIANTS],
)
def test_remote_write(
    sections: dict[str, Any], changes: dict[str, Any], remote_write: list[dict[str, Any]] | None
) -> None:
    data = prom_doc(spec(**sections), ctx(**changes))
    assert data.get("remote_write") == remote_write


@pytest.mark.parametrize(
    ("sections", "changes"), [pytest.param(v[1], v[2], id=v[0]) for v in VARIANTS]
)
def test_promtool_accepts_every_variant(
    tmp_path: Path, sections: dict[str, Any], changes: dict[str, Any], prometheus_bin: PromBin
) -> None:
    """Each supported release's promtool (2.42 and 2.53) accepts every variant."""
    s = spec(**sections)
    assert s.prometheus is not None
    path = tmp_path / "prometheus.yml"
    path.write_bytes(render_prometheus(s, ctx(**changes)))
    argv = [str(prometheus_bin.promtool), "check", "config"]
    if s.prometheus.mode == "agent":
        argv.append("--agent")
    res = subprocess.run([*argv, str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_scrape_jobs_and_labels() -> None:
    v = next(v for v in VARIANTS if v[0] == "everything")
    data = prom_doc(spec(**v[1]), ctx(**v[2]))
    assert data["global"] == {
        "scrape_interval": "30s",
        "external_labels": {
            "availability_zone": "eu-west-1a",
            "cluster": "prod",
            "env": 'with "quotes"',
            "instance_id": "i-0abc",
            # instance_type was asked for but not known: left out, never empty
        },
    }
    jobs = {j["job_name"]: j for j in data["scrape_configs"]}
    assert list(jobs) == ["prometheus", "app", "node"]  # metrics.scrape: false -> no ampd job
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:9090"]}]
    assert jobs["app"] == {
        "job_name": "app",
        "metrics_path": "/custom/metrics",
        "scheme": "https",
        "scrape_interval": "5s",
        "static_configs": [
            {
                "targets": ["127.0.0.1:8080", "[::1]:8081"],
                "labels": {"team": "platform", "tier": "a: b"},
            }
        ],
    }
    assert jobs["node"] == {
        "job_name": "node",
        "metrics_path": "/metrics",
        "scheme": "http",
        "static_configs": [{"targets": ["localhost:9100"]}],
    }


def test_scrape_limits_are_rendered_per_job_and_zero_is_no_limit() -> None:
    v = next(v for v in VARIANTS if v[0] == "scrape-limits-agent")
    jobs = {j["job_name"]: j for j in prom_doc(spec(**v[1]), ctx(**v[2]))["scrape_configs"]}
    limited = {k: jobs["app"].get(k) for k in ("sample_limit", "label_limit")}
    assert limited == {"sample_limit": 5000, "label_limit": 30}
    assert jobs["app"]["label_value_length_limit"] == 200
    for name in ("unlimited", "prometheus", "ampd"):  # 0 is Prometheus' own "no limit"
        assert not {"sample_limit", "label_limit", "label_value_length_limit"} & set(jobs[name])


def test_scrape_limits_leave_the_queue_alone() -> None:
    """A limit is a scrape-job edit: the reload keeps the remote-write queue."""
    base = {"workspace": WS, "prometheus": {"scrape_configs": [{"job": "a", "targets": ["h:1"]}]}}
    limited = {
        "workspace": WS,
        "prometheus": {"scrape_configs": [{"job": "a", "targets": ["h:1"], "sample_limit": 9}]},
    }
    before, after = (render_prometheus(spec(**d), ctx()) for d in (base, limited))
    assert before != after
    assert queue_fingerprint(before) == queue_fingerprint(after)


def test_external_labels_instance_label_wins_over_spec() -> None:
    s = spec(
        workspace=WS,
        prometheus={"external_labels": {"region": "x"}, "instance_labels": ["region"]},
    )
    data = prom_doc(s, ctx(instance_labels=INSTANCE))
    assert data["global"]["external_labels"] == {"region": "eu-west-1"}


def test_no_external_labels_block_when_empty() -> None:
    data = prom_doc(spec(prometheus={"remote_write": None}), ctx())
    assert data["global"] == {"scrape_interval": "15s"}


@pytest.mark.parametrize(
    ("metrics", "ampd_job"),
    [
        pytest.param({}, ["127.0.0.1:9795"], id="default-on"),
        pytest.param({"listen": "127.0.0.1:9800"}, ["127.0.0.1:9800"], id="moved"),
        pytest.param({"scrape": False}, None, id="scrape-off"),
        pytest.param({"enabled": False}, None, id="metrics-off"),
    ],
)
def test_ampd_self_scrape(metrics: dict[str, Any], ampd_job: list[str] | None) -> None:
    data = prom_doc(spec(prometheus={"remote_write": None}, metrics=metrics), ctx())
    jobs = {j["job_name"]: j for j in data["scrape_configs"]}
    if ampd_job is None:
        assert "ampd" not in jobs
    else:
        assert jobs["ampd"]["static_configs"] == [{"targets": ampd_job}]


@pytest.mark.parametrize(
    ("drift", "verb"), [("correct", "will be reverted"), ("report", "will be reported")]
)
def test_header_names_source_and_drift_policy(drift: str, verb: str) -> None:
    text = render_prometheus(
        spec(prometheus={"remote_write": None}, aws={"drift": drift}), ctx()
    ).decode()
    first = text.splitlines()[0]
    assert first == f'# Generated by ampd from "{STATE}". Edits here are drift and {verb}.'


@pytest.mark.parametrize(
    ("prom", "tail"),
    [
        pytest.param(
            {},
            ["--enable-feature=agent", f"--storage.agent.path={STATE_DIR}/data/prometheus/agent"],
            id="agent",
        ),
        pytest.param(
            {"mode": "server"},
            [f"--storage.tsdb.path={STATE_DIR}/data/prometheus/server"],
            id="server",
        ),
        pytest.param(
            {"mode": "server", "retention": "90d"},
            [
                f"--storage.tsdb.path={STATE_DIR}/data/prometheus/server",
                "--storage.tsdb.retention.time=90d",
            ],
            id="server-retention",
        ),
    ],
)
def test_prometheus_argv(prom: dict[str, Any], tail: list[str]) -> None:
    s = spec(prometheus={"remote_write": None, "listen": "127.0.0.1:19090", **prom})
    assert prometheus_argv(s, ctx()) == [
        "/usr/bin/prometheus",
        f"--config.file={STATE_DIR}/generated/prometheus.yml",
        "--web.listen-address=127.0.0.1:19090",
        *tail,
    ]


@pytest.mark.parametrize(
    ("sections", "can_sign", "mode"),
    [
        ({"prometheus": {"remote_write": None}}, True, "none"),
        ({"workspace": WS, "prometheus": {}}, False, "proxy"),
        ({"workspace": WS, "prometheus": {}}, True, "native"),
        ({"workspace": WS, "prometheus": {"remote_write": {"signing": "native"}}}, False, "native"),
        (
            {"workspace": WS, "prometheus": {"remote_write": {"signing": "proxy"}}, "proxy": {}},
            True,
            "proxy",
        ),
    ],
)
def test_signing_mode(sections: dict[str, Any], can_sign: bool, mode: str) -> None:
    assert signing_mode(spec(**sections), ctx(prometheus_can_sign=can_sign)) == mode


# ---------------------------------------------------------------------------------------
# the proxy


def test_proxy_settings_with_workspace() -> None:
    s = spec(workspace=WS, prometheus={}, proxy={"assume_role_arn": ROLE})
    assert proxy_settings(s, ctx()) == {
        "listen": "127.0.0.1:8005",
        "region": "eu-west-1",
        "service": "aps",
        "upstream": BASE,
        "workspace_id": "ws-1234",
        "assume_role_arn": ROLE,
        "allow_non_loopback": False,
        "allowed_uids": ["ampd-prometheus"],
    }


def test_proxy_settings_before_the_workspace_exists() -> None:
    s = spec(
        aws={"region": "us-east-2"},
        workspace=WS,
        prometheus={},
        proxy={"listen": "0.0.0.0:8005", "allow_non_loopback": True},
    )
    settings = proxy_settings(s, ctx(workspace=None))
    assert settings["upstream"] == "https://aps-workspaces.us-east-2.amazonaws.com"
    assert settings["region"] == "us-east-2"
    assert settings["workspace_id"] is None
    assert settings["allow_non_loopback"] is True


def test_proxy_settings_follow_a_data_plane_override() -> None:
    facts = replace(
        FACTS,
        remote_write_url="http://127.0.0.1:4566/workspaces/ws-1234/api/v1/remote_write",
    )
    s = spec(workspace=WS, prometheus={}, proxy={})
    assert proxy_settings(s, ctx(workspace=facts))["upstream"] == "http://127.0.0.1:4566"


def test_builtin_proxy_argv() -> None:
    s = spec(workspace=WS, prometheus={}, proxy={})
    c = ctx(python="/opt/venvs/ampd/bin/ampd")
    assert proxy_argv(s, c) == [
        "/opt/venvs/ampd/bin/ampd",
        "proxy",
        "--config",
        f"{STATE_DIR}/generated/proxy.json",
    ]


@pytest.mark.parametrize(
    ("role", "extra"), [(None, []), (ROLE, ["--role-arn", ROLE])], ids=["no-role", "role"]
)
def test_aws_sigv4_proxy_argv(role: str | None, extra: list[str]) -> None:
    proxy: dict[str, Any] = {
        "implementation": "aws-sigv4-proxy",
        "binary": "/usr/local/bin/aws-sigv4-proxy",
        "listen": "127.0.0.1:8006",
    }
    if role:
        proxy["assume_role_arn"] = role
    s = spec(workspace=WS, prometheus={}, proxy=proxy)
    assert proxy_argv(s, ctx()) == [
        "/usr/local/bin/aws-sigv4-proxy",
        "--name",
        "aps",
        "--region",
        "eu-west-1",
        "--host",
        "aps-workspaces.eu-west-1.amazonaws.com",
        "--port",
        "127.0.0.1:8006",
        *extra,
    ]


# ---------------------------------------------------------------------------------------
# Grafana

Q = f"{BASE}/workspaces/ws-1234"


@pytest.mark.parametrize(
    ("ds", "changes", "type_", "url", "json_data", "secure"),
    [
        pytest.param(
            {},
            {},
            "prometheus",
            Q,
            {
                "httpMethod": "POST",
                "sigV4Auth": True,
                "sigV4AuthType": "ec2_iam_role",
                "sigV4Region": "eu-west-1",
            },
            None,
            id="direct-ec2-iam-role",
        ),
        pytest.param(
            {"auth": "default", "assume_role_arn": READER},
            {},
            "prometheus",
            Q,
            {
                "httpMethod": "POST",
                "sigV4Auth": True,
                "sigV4AuthType": "default",
                "sigV4Region": "eu-west-1",
                "sigV4AssumeRoleArn": READER,
            },
            None,
            id="direct-default-assume-role",
        ),
        pytest.param(
            {"auth": "keys", "credentials_file": "grafana-keys"},
            {},
            "prometheus",
            Q,
            {
                "httpMethod": "POST",
                "sigV4Auth": True,
                "sigV4AuthType": "credentials",
                "sigV4Profile": "default",
                "sigV4Region": "eu-west-1",
            },
            None,
            id="direct-keys-credentials-file",
        ),
        pytest.param(
            {},
            {"grafana_major": 12},
            AMP_PLUGIN,
            Q,
            {
                "httpMethod": "POST",
                "sigV4Auth": True,
                "sigV4AuthType": "ec2_iam_role",
                "sigV4Region": "eu-west-1",
                "sigv4Service": "aps",
            },
            None,
            id="grafana-12-plugin",
        ),
        pytest.param(
            {},
            {"grafana_major": 11},
            "prometheus",
            Q,
            {
                "httpMethod": "POST",
                "sigV4Auth": True,
                "sigV4AuthType": "ec2_iam_role",
                "sigV4Region": "eu-west-1",
            },
            None,
            id="grafana-11-core-type",
        ),
        pytest.param(
            {"via": "proxy"},
            {"grafana_major": 12},
            "prometheus",
            "http://127.0.0.1:8005/workspaces/ws-1234",
            {"httpMethod": "POST"},
            None,
            id="via-proxy-unsigned",
        ),
    ],
)
def test_datasource(
    ds: dict[str, Any],
    changes: dict[str, Any],
    type_: str,
    url: str,
    json_data: dict[str, Any],
    secure: dict[str, str] | None,
) -> None:
    s = spec(workspace=WS, proxy={}, grafana={"enabled": True, "datasource": ds})
    rendered = by_name(s, ctx(**changes))
    provisioned = yaml.safe_load(rendered["grafana/provisioning/datasources/ampd.yaml"])
    assert provisioned == datasource(s, ctx(**changes))
    assert provisioned["apiVersion"] == 1
    [entry] = provisioned["datasources"]
    assert entry["type"] == type_
    assert entry["url"] == url
    assert entry["jsonData"] == json_data
    assert entry.get("secureJsonData") == secure
    assert entry["uid"] == DATASOURCE_UID
    assert entry["access"] == "proxy"
    assert entry["editable"] is False
    assert entry["isDefault"] is True
    assert entry["name"] == "Amazon Managed Prometheus"
    # Keys never enter the provisioning file: Grafana's AWS SDK reads the credentials
    # file named in its environment.
    command = json.loads(rendered["grafana.cmd.json"])
    if ds.get("auth") == "keys":
        assert command["env"] == {"AWS_SHARED_CREDENTIALS_FILE": "/etc/ampd/grafana-keys"}
    else:
        assert command["env"] == {}


@pytest.mark.parametrize("ds", [{}, {"via": "proxy"}], ids=["direct", "via-proxy"])
def test_no_workspace_yet_provisions_no_data_source(ds: dict[str, Any]) -> None:
    s = spec(workspace=WS, proxy={}, grafana={"enabled": True, "datasource": ds})
    rendered = by_name(s, ctx(workspace=None))
    provisioned = yaml.safe_load(rendered["grafana/provisioning/datasources/ampd.yaml"])
    assert provisioned == {"apiVersion": 1, "datasources": []}  # nothing fake
    assert b"pending" not in rendered["grafana/provisioning/datasources/ampd.yaml"]


def ini(data: bytes) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in data.decode().splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif " = " in line:
            k, v = line.split(" = ", 1)
            current[k] = v
    return sections


@pytest.mark.parametrize(
    ("ds", "providers", "assume"),
    [
        pytest.param({}, "default,ec2_iam_role", "false", id="ec2-iam-role"),
        pytest.param({"auth": "default"}, "default,ec2_iam_role", "false", id="default"),
        pytest.param(
            {"auth": "keys", "credentials_file": "/etc/ampd/k"},
            "credentials,default,ec2_iam_role",
            "false",
            id="keys",
        ),
        pytest.param({"assume_role_arn": READER}, "default,ec2_iam_role", "true", id="assume-role"),
    ],
)
def test_grafana_ini(ds: dict[str, Any], providers: str, assume: str) -> None:
    s = spec(workspace=WS, grafana={"enabled": True, "listen": "[::1]:3001", "datasource": ds})
    sections = ini(grafana_ini(s, ctx()))
    assert sections["server"] == {"http_addr": "::1", "http_port": "3001"}
    assert sections["auth"] == {"sigv4_auth_enabled": "true"}
    assert sections["aws"] == {
        "allowed_auth_providers": providers,
        "assume_role_enabled": assume,
    }
    # The configured auth provider is always allowed, or Grafana refuses the data source.
    auth_type = datasource(s, ctx())["datasources"][0]["jsonData"]["sigV4AuthType"]
    assert auth_type in providers.split(",")
    assert sections["paths"]["provisioning"] == f"{STATE_DIR}/generated/grafana/provisioning"
    assert sections["analytics"]["reporting_enabled"] == "false"


def test_dashboard_provider_and_argv() -> None:
    s = spec(
        workspace=WS,
        grafana={
            "enabled": True,
            "homepath": "/usr/share/grafana",
            "dashboards": ["dashboards", "/srv/more"],
        },
    )
    files = by_name(s, ctx())
    provider = yaml.safe_load(files["grafana/provisioning/dashboards/ampd.yaml"])
    assert provider["apiVersion"] == 1
    rows = [
        (p["name"], p["folder"], p["type"], p["disableDeletion"], p["options"]["path"])
        for p in provider["providers"]
    ]
    assert rows == [
        ("ampd", "ampd", "file", True, f"{STATE_DIR}/generated/grafana/dashboards"),
        ("user-0", "", "file", False, "/etc/ampd/dashboards"),
        ("user-1", "", "file", False, "/srv/more"),
    ]
    assert all(p["allowUiUpdates"] is False for p in provider["providers"])
    # The dashboards ampd ships land where its own provider looks.
    shipped = [n for n in files if n.startswith("grafana/dashboards/")]
    assert shipped
    assert all(n.endswith(".json") and json.loads(files[n]) for n in shipped)
    assert json.loads(files["grafana.cmd.json"]) == {
        "argv": [
            "/usr/sbin/grafana-server",
            f"--config={STATE_DIR}/generated/grafana/grafana.ini",
            "--homepath=/usr/share/grafana",
        ],
        "env": {},
    }


# ---------------------------------------------------------------------------------------
# the whole set


@pytest.mark.parametrize(
    ("sections", "names"),
    [
        pytest.param({}, [], id="nothing"),
        pytest.param(
            {"prometheus": {"remote_write": None}},
            ["prometheus.cmd.json", "prometheus.yml"],
            id="prometheus-only",
        ),
        pytest.param(
            {"workspace": WS, "prometheus": {}, "proxy": {}},
            ["prometheus.cmd.json", "prometheus.yml", "proxy.json", "sigv4-proxy.cmd.json"],
            id="prometheus-and-proxy",
        ),
        pytest.param(
            {"workspace": WS, "prometheus": {"enabled": False}, "proxy": {}},
            [],
            id="proxy-auto-off",
        ),
        pytest.param(
            {"workspace": WS, "grafana": {"enabled": True}},
            [
                "grafana.cmd.json",
                "grafana/dashboards/*.json",
                "grafana/grafana.ini",
                "grafana/provisioning/dashboards/ampd.yaml",
                "grafana/provisioning/datasources/ampd.yaml",
            ],
            id="grafana-only",
        ),
    ],
)
def test_render_all_files(sections: dict[str, Any], names: list[str]) -> None:
    files = render_all(spec(**sections), ctx())
    shipped = re.compile(r"^grafana/dashboards/[^/]+\.json$")
    found = [("grafana/dashboards/*.json" if shipped.match(f.name) else f.name) for f in files]
    assert list(dict.fromkeys(found)) == names  # sorted by name, shipped dashboards grouped
    for f in files:
        assert f.mode == 0o640
        assert f.sha256 == hashlib.sha256(f.data).hexdigest()
        if f.name.endswith(".json"):
            assert isinstance(json.loads(f.data), dict)
        assert f.data.endswith(b"\n")


def test_command_files_carry_the_argv() -> None:
    s = spec(workspace=WS, prometheus={}, proxy={})
    files = by_name(s, ctx())
    assert json.loads(files["prometheus.cmd.json"]) == {
        "argv": prometheus_argv(s, ctx()),
        "env": {},
    }
    assert json.loads(files["sigv4-proxy.cmd.json"])["argv"] == proxy_argv(s, ctx())
    assert json.loads(files["proxy.json"]) == proxy_settings(s, ctx())


def test_render_is_deterministic() -> None:
    sections = next(v for v in VARIANTS if v[0] == "everything")[1]
    s = spec(**sections, proxy={}, grafana={"enabled": True, "dashboards": ["/a", "/b"]})
    c = ctx(instance_labels=INSTANCE, grafana_major=12)
    first = render_all(s, c)
    second = render_all(
        spec(**sections, proxy={}, grafana={"enabled": True, "dashboards": ["/a", "/b"]}), c
    )
    assert [(r.name, r.data) for r in first] == [(r.name, r.data) for r in second]
    # Dict ordering in the inputs does not leak into the bytes.
    reordered = dict(reversed(list(INSTANCE.items())))
    third = render_all(s, ctx(instance_labels=reordered, grafana_major=12))
    assert [r.sha256 for r in first] == [r.sha256 for r in third]
