"""spec/checks.py: every semantic check has a failing case and the matching passing case,
both through the pure function and through the loader (which adds FILE:LINE:COL)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ampd.errors import SpecError
from ampd.spec.checks import executables, proxy_enabled, semantic_problems
from ampd.spec.load import dotted, load_spec
from ampd.spec.models import StateSpec

WS = {"alias": "w"}
ROLE = "arn:aws:iam::111122223333:role/r"
LOGS = "arn:aws:logs:eu-west-1:111122223333:log-group:/ampd/w:*"
JOB = {"job": "app", "targets": ["127.0.0.1:8080"]}


def doc(**sections: Any) -> dict[str, Any]:
    return {"version": 1, **sections}


# (id, failing document, path, message fragment, passing document)
CASES: list[tuple[str, dict[str, Any], str, str, dict[str, Any]]] = [
    (
        "port-clash-prometheus-grafana",
        doc(workspace=WS, prometheus={}, grafana={"enabled": True, "listen": "127.0.0.1:9090"}),
        "grafana.listen",
        "port 9090 is already used by prometheus.listen",
        doc(workspace=WS, prometheus={}, grafana={"enabled": True, "listen": "127.0.0.1:3000"}),
    ),
    (
        "port-clash-proxy-metrics",
        doc(workspace=WS, prometheus={}, proxy={"listen": "127.0.0.1:9795"}),
        "metrics.listen",
        "port 9795 is already used by proxy.listen",
        doc(workspace=WS, prometheus={}, proxy={"listen": "127.0.0.1:9796"}),
    ),
    (
        "port-clash-different-hosts",
        doc(metrics={"listen": "127.0.0.2:9090"}, workspace=WS, prometheus={}),
        "metrics.listen",
        "port 9090 is already used by prometheus.listen",
        # a disabled listener cannot clash
        doc(metrics={"enabled": False, "listen": "127.0.0.2:9090"}, workspace=WS, prometheus={}),
    ),
    (
        "port-clash-disabled-prometheus",
        doc(
            workspace=WS,
            proxy={"enabled": True, "listen": "127.0.0.1:3000"},
            grafana={"enabled": True},
        ),
        "grafana.listen",
        "port 3000 is already used by proxy.listen",
        doc(
            workspace=WS,
            proxy={"enabled": False, "listen": "127.0.0.1:3000"},
            grafana={"enabled": True},
        ),
    ),
    (
        "prometheus-non-loopback",
        doc(prometheus={"listen": "0.0.0.0:9090"}),
        "prometheus.listen",
        "set prometheus.allow_non_loopback: true if you mean it",
        doc(prometheus={"listen": "0.0.0.0:9090", "allow_non_loopback": True}),
    ),
    (
        "grafana-non-loopback",
        doc(workspace=WS, prometheus={}, grafana={"enabled": True, "listen": "[::]:3000"}),
        "grafana.listen",
        "set grafana.allow_non_loopback: true if you mean it",
        doc(
            workspace=WS,
            prometheus={},
            grafana={"enabled": True, "listen": "[::]:3000", "allow_non_loopback": True},
        ),
    ),
    (
        "metrics-non-loopback",
        doc(metrics={"listen": "10.0.0.5:9795"}),
        "metrics.listen",
        "set metrics.allow_non_loopback: true if you mean it",
        doc(metrics={"listen": "127.0.0.9:9795"}),
    ),
    (
        "proxy-non-loopback",
        doc(proxy={"listen": "0.0.0.0:8005"}),
        "proxy.listen",
        "'0.0.0.0:8005' is not loopback",
        doc(proxy={"listen": "0.0.0.0:8005", "allow_non_loopback": True}),
    ),
    (
        "proxy-non-loopback-v6",
        doc(proxy={"listen": "[::]:8005"}),
        "proxy.listen",
        "set proxy.allow_non_loopback: true if you mean it",
        doc(proxy={"listen": "[::1]:8005"}),
    ),
    (
        "proxy-private-address",
        doc(proxy={"listen": "10.0.0.5:8005"}),
        "proxy.listen",
        "is not loopback",
        doc(proxy={"listen": "localhost:8005"}),
    ),
    (
        "grafana-needs-workspace",
        doc(grafana={"enabled": True}),
        "grafana.enabled",
        "Grafana queries the workspace: add a workspace section",
        doc(grafana={"enabled": True}, workspace=WS),
    ),
    (
        "grafana-disabled-needs-nothing",
        doc(grafana={"enabled": True, "listen": "127.0.0.1:9795"}, workspace=WS),
        "metrics.listen",
        "port 9795 is already used by grafana.listen",
        doc(grafana={"enabled": False}),
    ),
    (
        "observe-forbids-delete",
        doc(aws={"mode": "observe"}, workspace={**WS, "deletion": "delete"}),
        "workspace.deletion",
        "aws.mode: observe changes nothing, so deletion: delete cannot apply",
        doc(aws={"mode": "observe"}, workspace={**WS, "deletion": "retain"}),
    ),
    (
        "manage-allows-delete",
        doc(aws={"mode": "observe"}, workspace={**WS, "deletion": "delete"}),
        "workspace.deletion",
        "use deletion: retain",
        doc(aws={"mode": "manage"}, workspace={**WS, "deletion": "delete"}),
    ),
    (
        "kms-on-adopted-workspace",
        doc(workspace={"id": "ws-1", "kms_key_arn": "arn:aws:kms:eu-west-1:111122223333:key/k"}),
        "workspace.kms_key_arn",
        "kms_key_arn is set only when ampd creates the workspace",
        doc(workspace={"alias": "a", "kms_key_arn": "arn:aws:kms:eu-west-1:111122223333:key/k"}),
    ),
    (
        "logging-without-arn",
        doc(workspace={**WS, "logging": {}}),
        "workspace.logging.log_group_arn",
        "logging needs log_group_arn",
        doc(workspace={**WS, "logging": {"log_group_arn": LOGS}}),
    ),
    (
        "logging-not-a-log-group",
        doc(workspace={**WS, "logging": {"log_group_arn": ROLE}}),
        "workspace.logging.log_group_arn",
        "is not a CloudWatch Logs log group ARN",
        doc(workspace={**WS, "logging": {"log_group_arn": LOGS}}),
    ),
    (
        # AMP refuses a log group ARN without its ':*' (the model's pattern): said at
        # validate time, not found out as a 400 from CreateLoggingConfiguration
        "logging-arn-without-star",
        doc(workspace={**WS, "logging": {"log_group_arn": LOGS.removesuffix(":*")}}),
        "workspace.logging.log_group_arn",
        "AMP needs the ARN ending in ':*'",
        doc(workspace={**WS, "logging": {"log_group_arn": LOGS}}),
    ),
    (
        "remote-write-needs-workspace",
        doc(prometheus={"remote_write": {}}),
        "prometheus.remote_write",
        "remote_write needs a workspace section",
        doc(prometheus={"remote_write": None}),
    ),
    (
        "remote-write-ignored-when-disabled",
        doc(prometheus={"remote_write": {"signing": "auto"}}),
        "prometheus.remote_write",
        "set remote_write: null for a local-only Prometheus",
        doc(prometheus={"enabled": False}),
    ),
    (
        "signing-proxy-needs-proxy-section",
        doc(workspace=WS, prometheus={"remote_write": {"signing": "proxy"}}),
        "prometheus.remote_write.signing",
        "signing: proxy needs a proxy section",
        doc(workspace=WS, prometheus={"remote_write": {"signing": "proxy"}}, proxy={}),
    ),
    (
        "signing-proxy-needs-proxy-on",
        doc(
            workspace=WS,
            prometheus={"remote_write": {"signing": "proxy"}},
            proxy={"enabled": False},
        ),
        "proxy.enabled",
        "remote_write signing: proxy needs the proxy on",
        doc(
            workspace=WS,
            prometheus={"remote_write": {"signing": "native"}},
            proxy={"enabled": False},
        ),
    ),
    (
        "instance-labels-need-remote-write",
        doc(prometheus={"remote_write": None, "instance_labels": ["instance_id"]}),
        "prometheus.instance_labels",
        "they do nothing without remote_write",
        doc(workspace=WS, prometheus={"instance_labels": ["instance_id"]}),
    ),
    (
        "grafana-via-proxy-needs-proxy",
        doc(workspace=WS, grafana={"enabled": True, "datasource": {"via": "proxy"}}),
        "grafana.datasource.via",
        "via: proxy needs a proxy section",
        doc(workspace=WS, grafana={"enabled": True, "datasource": {"via": "proxy"}}, proxy={}),
    ),
    (
        "reader-trusts-missing-writer",
        doc(iam={"reader": {}}),
        "iam.reader.trusted",
        "trusts 'writer' but there is no iam.writer",
        doc(iam={"reader": {}, "writer": {}}),
    ),
    (
        "reader-trusted-by-nobody",
        doc(iam={"reader": {"trusted": []}}),
        "iam.reader.trusted",
        "nobody could assume the reader role",
        doc(iam={"reader": {"trusted": [ROLE]}}),
    ),
    (
        "aws-sigv4-proxy-needs-binary",
        doc(proxy={"implementation": "aws-sigv4-proxy"}),
        "proxy.binary",
        "implementation: aws-sigv4-proxy needs binary",
        doc(
            proxy={"implementation": "aws-sigv4-proxy", "binary": "/usr/local/bin/aws-sigv4-proxy"}
        ),
    ),
    (
        "endpoint-url-scheme",
        doc(aws={"endpoint_url": "aps.eu-west-1.amazonaws.com"}),
        "aws.endpoint_url",
        "must be an http(s):// URL",
        doc(aws={"endpoint_url": "https://aps.eu-west-1.amazonaws.com"}),
    ),
    (
        "data-plane-url-scheme",
        doc(aws={"data_plane_url": "ftp://x"}),
        "aws.data_plane_url",
        "must be an http(s):// URL",
        doc(aws={"data_plane_url": "http://127.0.0.1:9999"}),
    ),
    (
        "data-plane-url-path",
        doc(aws={"data_plane_url": "https://vpce.example/prefix"}),
        "aws.data_plane_url",
        "must be scheme://host[:port] only",
        doc(aws={"data_plane_url": "https://vpce.example/"}),
    ),
    (
        "job-named-like-the-built-in-prometheus-job",
        doc(prometheus={"remote_write": None, "scrape_configs": [JOB | {"job": "prometheus"}]}),
        "prometheus.scrape_configs[0].job",
        "'prometheus' is the name of a job ampd adds itself (prometheus, ampd)",
        doc(prometheus={"remote_write": None, "scrape_configs": [JOB | {"job": "prom"}]}),
    ),
    (
        "job-named-like-the-built-in-ampd-job",
        doc(prometheus={"remote_write": None, "scrape_configs": [JOB | {"job": "ampd"}]}),
        "prometheus.scrape_configs[0].job",
        "'ampd' is the name of a job ampd adds itself",
        doc(prometheus={"remote_write": None, "scrape_configs": [JOB | {"job": "ampd_app"}]}),
    ),
    (
        "target-host-with-a-slash",
        doc(prometheus={"remote_write": None, "scrape_configs": [JOB | {"targets": ["h/m:80"]}]}),
        "prometheus.scrape_configs[0].targets[0]",
        "target 'h/m:80': a host name has no '/'",
        doc(prometheus={"remote_write": None, "scrape_configs": [JOB | {"targets": ["h:80"]}]}),
    ),
    (
        "ha-replica-without-cluster",
        doc(workspace=WS, prometheus={"external_labels": {"__replica__": "a", "env": "prod"}}),
        "prometheus.external_labels.__replica__",
        "AMP deduplicates HA pairs by cluster + __replica__; set cluster too",
        doc(workspace=WS, prometheus={"external_labels": {"__replica__": "a", "cluster": "p"}}),
    ),
]


def _spec(data: dict[str, Any]) -> StateSpec:
    return StateSpec.model_validate(data)


@pytest.mark.parametrize(
    ("data", "path", "message"), [pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES]
)
def test_check_fails(data: dict[str, Any], path: str, message: str) -> None:
    found = [(dotted(loc), msg) for loc, msg in semantic_problems(_spec(data))]
    assert [p for p, _ in found] == [path], found
    assert message in found[0][1]


@pytest.mark.parametrize("data", [pytest.param(c[4], id=c[0]) for c in CASES])
def test_check_passes(data: dict[str, Any]) -> None:
    assert semantic_problems(_spec(data)) == []


@pytest.mark.parametrize(("data", "path"), [pytest.param(c[1], c[2], id=c[0]) for c in CASES])
def test_loader_reports_check_with_position(data: dict[str, Any], path: str) -> None:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    with pytest.raises(SpecError) as exc:
        load_spec(text, "s.yml")
    [problem] = exc.value.problems
    assert problem.path == path
    assert problem.file == "s.yml"
    # The problem points into the section it names; a section left to its defaults
    # (metrics here) has no place in the file, so it points at the top.
    lines = text.splitlines()
    top = path.split(".", maxsplit=1)[0]
    starts = [i + 1 for i, line in enumerate(lines) if line.startswith(f"{top}:")]
    if starts:
        assert starts[0] <= problem.line <= len(lines)
    else:
        assert (problem.line, problem.column) == (1, 1)


def test_several_checks_are_all_reported_in_file_order() -> None:
    text = (
        "version: 1\n"
        "aws:\n"
        "  mode: observe\n"
        "  endpoint_url: nowhere\n"
        "workspace:\n"
        "  alias: w\n"
        "  deletion: delete\n"
        "proxy:\n"
        "  listen: 0.0.0.0:8005\n"
    )
    with pytest.raises(SpecError) as exc:
        load_spec(text, "s.yml")
    assert [f"{p.line}:{p.column}: {p.path}" for p in exc.value.problems] == [
        "4:17: aws.endpoint_url",
        "7:13: workspace.deletion",
        "9:11: proxy.listen",
    ]


@pytest.mark.parametrize(
    ("data", "enabled"),
    [
        pytest.param(doc(), False, id="no-proxy-section"),
        pytest.param(doc(proxy={}), False, id="auto-nothing-uses-it"),
        pytest.param(doc(proxy={}, workspace=WS, prometheus={}), True, id="auto-remote-write"),
        pytest.param(
            doc(proxy={}, workspace=WS, prometheus={"enabled": False}),
            False,
            id="auto-prometheus-disabled",
        ),
        pytest.param(
            doc(proxy={}, workspace=WS, prometheus={"remote_write": None}),
            False,
            id="auto-no-remote-write",
        ),
        pytest.param(
            doc(proxy={}, workspace=WS, grafana={"enabled": True, "datasource": {"via": "proxy"}}),
            True,
            id="auto-grafana-via-proxy",
        ),
        pytest.param(
            doc(proxy={}, workspace=WS, grafana={"enabled": True}),
            False,
            id="auto-grafana-direct",
        ),
        pytest.param(doc(proxy={"enabled": True}), True, id="explicit-on"),
        pytest.param(
            doc(proxy={"enabled": False}, workspace=WS, prometheus={}), False, id="explicit-off"
        ),
    ],
)
def test_proxy_enabled(data: dict[str, Any], enabled: bool) -> None:
    assert proxy_enabled(_spec(data)) is enabled


@pytest.mark.parametrize(
    ("binary", "promtool"),
    [
        ("/usr/bin/prometheus", "/usr/bin/promtool"),
        ("/", "/promtool"),  # the validate fuzz found with_name() raising on it
        ("/opt/prom/", "/opt/promtool"),
    ],
)
def test_the_promtool_beside_any_binary_path(binary: str, promtool: str) -> None:
    spec = StateSpec.model_validate({"version": 1, "prometheus": {"binary": binary}})
    paths = [path for _loc, path, _what in executables(spec)]
    assert paths == [binary, promtool]


def test_log_group_pattern_is_the_amp_models() -> None:
    """The copy in spec/checks.py is the pattern botocore's amp model gives logGroupArn."""
    import botocore.session  # noqa: PLC0415 (only this test needs it)

    from ampd.spec.checks import LOG_GROUP_ARN  # noqa: PLC0415

    model = botocore.session.get_session().get_service_model("amp")
    for op in ("CreateLoggingConfiguration", "UpdateLoggingConfiguration"):
        member = model.operation_model(op).input_shape.members["logGroupArn"]
        assert member.metadata["pattern"] == LOG_GROUP_ARN.pattern, op


def test_a_replica_label_without_cluster_is_named_at_its_own_line() -> None:
    text = (
        "version: 1\n"
        "workspace: {alias: w}\n"
        "prometheus:\n"
        "  external_labels:\n"
        "    env: prod\n"
        "    __replica__: a\n"
    )
    with pytest.raises(SpecError) as exc:
        load_spec(text, "/etc/ampd/state.yml")
    [problem] = exc.value.problems
    assert (problem.file, problem.line, problem.path) == (
        "/etc/ampd/state.yml",
        6,
        "prometheus.external_labels.__replica__",
    )
    assert str(exc.value).startswith("/etc/ampd/state.yml:6:")
    # cluster alone (one host, or a fleet's shared value) is no HA pair: nothing to say
    alone = load_spec(text.replace("__replica__: a", "cluster: c"), "s.yml").spec
    assert semantic_problems(alone) == []
