"""spec/models.py validators and spec/load.py: every field rule and model validator has a
rejected case and the matching accepted one; problems point at FILE:LINE:COL."""

from __future__ import annotations

import hashlib
from textwrap import dedent

import pytest

from ampd.errors import Problem, SpecError
from ampd.spec.load import LoadedSpec, dotted, load_spec
from ampd.spec.models import duration_seconds, split_listen

NEEDS_FILE = "needs file (beside the state) or content (the YAML itself)"

FILE = "/etc/ampd/state.yml"
WS = "workspace: {alias: w}\n"  # a workspace, so remote_write has somewhere to go


def load(body: str, file: str = FILE) -> LoadedSpec:
    return load_spec("version: 1\n" + body, file)


def problems(body: str, file: str = FILE) -> list[Problem]:
    with pytest.raises(SpecError) as exc:
        load(body, file)
    return exc.value.problems


# (id, rejected body, path, message fragment, accepted body). Bodies follow "version: 1\n".
ROWS = [
    # stack, runtime (version has its own test)
    ("stack-pattern", "stack: Prod\n", "stack", "'Prod' is not a valid stack", "stack: prod-1\n"),
    ("stack-length", f"stack: {'a' * 33}\n", "stack", "is not a valid stack", "stack: a\n"),
    (
        "runtime",
        "runtime: docker\n",
        "runtime",
        "'auto', 'systemd' or 'supervisor'",
        "runtime: supervisor\n",
    ),
    # durations
    (
        "duration-words",
        "aws: {resync: 5 minutes}\n",
        "aws.resync",
        "'5 minutes' is not a valid resync",
        "aws: {resync: 5m}\n",
    ),
    (
        "duration-fraction",
        "aws: {resync: 1.5m}\n",
        "aws.resync",
        "is not a valid resync",
        "aws: {resync: 90s}\n",
    ),
    (
        "duration-zero",
        "aws: {resync: 0s}\n",
        "aws.resync",
        "'0s' must be longer than zero",
        "aws: {resync: 1h}\n",
    ),
    (
        "duration-number",
        "aws: {resync: 300}\n",
        "aws.resync",
        "valid string",
        "aws: {resync: 300s}\n",
    ),
    (
        "duration-scrape-interval",
        WS + "prometheus: {scrape_interval: 15}\n",
        "prometheus.scrape_interval",
        "valid string",
        WS + "prometheus: {scrape_interval: 500ms}\n",
    ),
    # listen addresses
    (
        "listen-no-port",
        WS + "prometheus: {listen: '127.0.0.1'}\n",
        "prometheus.listen",
        "is not HOST:PORT",
        WS + "prometheus: {listen: '127.0.0.1:9091'}\n",
    ),
    (
        "listen-hostname",
        WS + "prometheus: {listen: 'example.com:9090'}\n",
        "prometheus.listen",
        "'example.com' is not an IP address or 'localhost'",
        WS + "prometheus: {listen: 'localhost:9090'}\n",
    ),
    (
        "listen-port-zero",
        WS + "prometheus: {listen: '127.0.0.1:0'}\n",
        "prometheus.listen",
        "port 0 is out of range 1-65535",
        WS + "prometheus: {listen: '127.0.0.1:1'}\n",
    ),
    (
        "listen-port-high",
        WS + "prometheus: {listen: '127.0.0.1:65536'}\n",
        "prometheus.listen",
        "port 65536 is out of range",
        WS + "prometheus: {listen: '127.0.0.1:65535'}\n",
    ),
    (
        "listen-named-port",
        "metrics: {listen: '127.0.0.1:http'}\n",
        "metrics.listen",
        "is not HOST:PORT",
        "metrics: {listen: '[::1]:9795'}\n",
    ),
    (
        "listen-not-string",
        "grafana: {listen: 3000}\n",
        "grafana.listen",
        "valid string",
        "grafana: {listen: '127.0.0.1:3001'}\n",
    ),
    # regions
    (
        "region-case",
        "aws: {region: Eu-West-1}\n",
        "aws.region",
        "'Eu-West-1' is not an AWS region (e.g. eu-west-1) or 'auto'",
        "aws: {region: eu-west-1}\n",
    ),
    (
        "region-az",
        "aws: {region: eu-west-1a}\n",
        "aws.region",
        "is not an AWS region",
        "aws: {region: us-gov-west-1}\n",
    ),
    ("region-empty", "aws: {region: ''}\n", "aws.region", "or 'auto'", "aws: {region: auto}\n"),
    (
        "aws-mode",
        "aws: {mode: dry}\n",
        "aws.mode",
        "'manage' or 'observe'",
        "aws: {mode: observe}\n",
    ),
    (
        "aws-drift",
        "aws: {drift: fix}\n",
        "aws.drift",
        "'correct' or 'report'",
        "aws: {drift: report}\n",
    ),
    # workspace
    (
        "alias-empty",
        "workspace: {alias: ''}\n",
        "workspace.alias",
        "at least 1 character",
        "workspace: {alias: a}\n",
    ),
    (
        "alias-101",
        f"workspace: {{alias: {'a' * 101}}}\n",
        "workspace.alias",
        "at most 100 characters",
        f"workspace: {{alias: {'a' * 100}}}\n",
    ),
    (
        "workspace-unnamed",
        "workspace: {tags: {team: x}}\n",
        "workspace",
        "name the workspace: set alias (to create or find it) or id",
        "workspace: {id: ws-0123abcd-4567}\n",
    ),
    (
        "workspace-id",
        "workspace: {id: '0123'}\n",
        "workspace.id",
        "'0123' is not a valid id: string should match pattern '^ws-[0-9a-zA-Z-]{1,64}$'",
        "workspace: {id: ws-0123}\n",
    ),
    (
        "rule-group-dupes",
        "workspace: {alias: a, rule_groups: [{name: x, file: a.yml}, {name: x, file: b.yml}]}\n",
        "workspace",
        "rule group names must be unique; repeated: x",
        "workspace: {alias: a, rule_groups: [{name: x, file: a.yml}, {name: y, file: b.yml}]}\n",
    ),
    (
        "rule-group-name",
        "workspace: {alias: a, rule_groups: [{name: -x, file: a.yml}]}\n",
        "workspace.rule_groups[0].name",
        "is not a valid name",
        "workspace: {alias: a, rule_groups: [{name: x.y-z_1, file: a.yml}]}\n",
    ),
    (
        "rule-group-file-missing",
        "workspace: {alias: a, rule_groups: [{name: x}]}\n",
        "workspace.rule_groups[0]",
        NEEDS_FILE,
        "workspace: {alias: a, rule_groups: [{name: x, file: x.yml}]}\n",
    ),
    (
        "tag-prefix-ampd",
        "workspace: {alias: a, tags: {'ampd:stack': x}}\n",
        "workspace",
        "tag 'ampd:stack': the ampd: and aws: prefixes are reserved",
        "workspace: {alias: a, tags: {'team:ampd': x}}\n",
    ),
    (
        "tag-prefix-aws",
        "workspace: {alias: a, tags: {'aws:x': y}}\n",
        "workspace",
        "prefixes are reserved",
        "workspace: {alias: a, tags: {awsx: y}}\n",
    ),
    (
        "tag-value-length",
        f"workspace: {{alias: a, tags: {{t: {'v' * 257}}}}}\n",
        "workspace.tags.t",
        "at most 256 characters",
        f"workspace: {{alias: a, tags: {{t: {'v' * 256}}}}}\n",
    ),
    (
        "retention-days-low",
        "workspace: {alias: a, retention_days: 0}\n",
        "workspace.retention_days",
        "greater than or equal to 1",
        "workspace: {alias: a, retention_days: 1}\n",
    ),
    (
        "retention-days-high",
        "workspace: {alias: a, retention_days: 1096}\n",
        "workspace.retention_days",
        "less than or equal to 1095",
        "workspace: {alias: a, retention_days: 1095}\n",
    ),
    (
        "kms-arn",
        "workspace: {alias: a, kms_key_arn: 'key/123'}\n",
        "workspace.kms_key_arn",
        "'key/123' is not an ARN",
        "workspace: {alias: a, kms_key_arn: 'arn:aws:kms:eu-west-1:111122223333:key/1'}\n",
    ),
    (
        "deletion",
        "workspace: {alias: a, deletion: purge}\n",
        "workspace.deletion",
        "'retain' or 'delete'",
        "workspace: {alias: a, deletion: delete}\n",
    ),
    # iam
    (
        "iam-role-name",
        "iam: {writer: {role_name: 'my role'}}\n",
        "iam.writer.role_name",
        "is not a valid role_name",
        "iam: {writer: {role_name: 'my+role=,.@-_1'}}\n",
    ),
    (
        "iam-role-name-length",
        f"iam: {{writer: {{role_name: {'r' * 65}}}}}\n",
        "iam.writer.role_name",
        "is not a valid role_name",
        f"iam: {{writer: {{role_name: {'r' * 64}}}}}\n",
    ),
    (
        "iam-trusted",
        "iam: {writer: {}, reader: {trusted: [someone]}}\n",
        "iam.reader.trusted[0]",
        "'someone' is not an ARN",
        "iam: {writer: {}, reader: {trusted: [writer, 'arn:aws:iam::111122223333:role/x']}}\n",
    ),
    (
        "iam-policy",
        "iam: {writer: {policy: admin}}\n",
        "iam.writer.policy",
        "'scoped' or 'managed'",
        "iam: {writer: {policy: managed}}\n",
    ),
    # prometheus
    (
        "prom-binary-relative",
        WS + "prometheus: {binary: prometheus}\n",
        "prometheus.binary",
        "is not a valid binary",
        WS + "prometheus: {binary: /opt/prometheus/prometheus}\n",
    ),
    (
        "prom-mode",
        WS + "prometheus: {mode: full}\n",
        "prometheus.mode",
        "'agent' or 'server'",
        WS + "prometheus: {mode: server}\n",
    ),
    (
        "retention-in-agent-mode",
        WS + "prometheus: {retention: 30d}\n",
        "prometheus",
        "retention applies to mode: server only",
        WS + "prometheus: {mode: server, retention: 30d}\n",
    ),
    (
        "external-label-name",
        WS + "prometheus: {external_labels: {my-label: x}}\n",
        "prometheus.external_labels.my-label",
        "is not a valid key",
        WS + "prometheus: {external_labels: {my_label: x}}\n",
    ),
    (
        "instance-label",
        WS + "prometheus: {instance_labels: [hostname]}\n",
        "prometheus.instance_labels[0]",
        "'instance_id'",
        WS + "prometheus: {instance_labels: [region, account_id, image_id]}\n",
    ),
    (
        "scrape-no-targets",
        WS + "prometheus: {scrape_configs: [{job: a, targets: []}]}\n",
        "prometheus.scrape_configs[0].targets",
        "at least 1 item",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['127.0.0.1:1']}]}\n",
    ),
    (
        "scrape-target-no-port",
        WS + "prometheus: {scrape_configs: [{job: a, targets: [localhost]}]}\n",
        "prometheus.scrape_configs[0]",
        "target 'localhost' is not HOST:PORT",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['localhost:80']}]}\n",
    ),
    (
        "scrape-target-port-range",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:70000']}]}\n",
        "prometheus.scrape_configs[0]",
        "target 'h:70000' is not HOST:PORT",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:65535']}]}\n",
    ),
    (
        "scrape-job-name",
        WS + "prometheus: {scrape_configs: [{job: my-app, targets: ['h:1']}]}\n",
        "prometheus.scrape_configs[0].job",
        "'my-app' is not a valid job",
        WS + "prometheus: {scrape_configs: [{job: my_app, targets: ['h:1']}]}\n",
    ),
    (
        "scrape-sample-limit-negative",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], sample_limit: -1}]}\n",
        "prometheus.scrape_configs[0].sample_limit",
        "greater than or equal to 0",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], sample_limit: 0}]}\n",
    ),
    (
        "scrape-sample-limit-past-uint32",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'],"
        " sample_limit: 4294967296}]}\n",
        "prometheus.scrape_configs[0].sample_limit",
        "less than or equal to 4294967295",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'],"
        " sample_limit: 4294967295}]}\n",
    ),
    (
        "scrape-label-limit-string",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], label_limit: many}]}\n",
        "prometheus.scrape_configs[0].label_limit",
        "valid integer",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], label_limit: 30}]}\n",
    ),
    (
        "scrape-label-value-length-limit-negative",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'],"
        " label_value_length_limit: -5}]}\n",
        "prometheus.scrape_configs[0].label_value_length_limit",
        "greater than or equal to 0",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'],"
        " label_value_length_limit: 200}]}\n",
    ),
    (
        "scrape-job-dupes",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1']},"
        " {job: a, targets: ['h:2']}]}\n",
        "prometheus",
        "scrape job names must be unique; repeated: a",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1']},"
        " {job: b, targets: ['h:2']}]}\n",
    ),
    (
        "scrape-metrics-path",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], metrics_path: metrics}]}\n",
        "prometheus.scrape_configs[0].metrics_path",
        "is not a valid metrics_path",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], metrics_path: /m}]}\n",
    ),
    (
        "scrape-scheme",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], scheme: ftp}]}\n",
        "prometheus.scrape_configs[0].scheme",
        "'http' or 'https'",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], scheme: https}]}\n",
    ),
    (
        "scrape-interval",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], interval: 1 m}]}\n",
        "prometheus.scrape_configs[0].interval",
        "is not a valid interval",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], interval: 1m}]}\n",
    ),
    (
        "scrape-label-name",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], labels: {0x: y}}]}\n",
        "prometheus.scrape_configs[0].labels.0x",
        "is not a valid key",
        WS + "prometheus: {scrape_configs: [{job: a, targets: ['h:1'], labels: {_x: y}}]}\n",
    ),
    (
        "signing",
        WS + "prometheus: {remote_write: {signing: maybe}}\n",
        "prometheus.remote_write.signing",
        "'auto', 'native' or 'proxy'",
        WS + "prometheus: {remote_write: {signing: native}}\n",
    ),
    (
        "queue-capacity",
        WS + "prometheus: {remote_write: {queue: {capacity: 0}}}\n",
        "prometheus.remote_write.queue.capacity",
        "greater than or equal to 1",
        WS + "prometheus: {remote_write: {queue: {capacity: 1}}}\n",
    ),
    (
        "queue-max-shards",
        WS + "prometheus: {remote_write: {queue: {max_shards: 0}}}\n",
        "prometheus.remote_write.queue.max_shards",
        "greater than or equal to 1",
        WS + "prometheus: {remote_write: {queue: {max_shards: 1}}}\n",
    ),
    # proxy
    (
        "proxy-enabled",
        "proxy: {enabled: sometimes}\n",
        "proxy.enabled",
        "Input should be 'auto' or Input should be a valid boolean",
        "proxy: {enabled: false}\n",
    ),
    (
        "proxy-implementation",
        "proxy: {implementation: nginx}\n",
        "proxy.implementation",
        "'builtin' or 'aws-sigv4-proxy'",
        "proxy: {implementation: aws-sigv4-proxy, binary: /usr/bin/aws-sigv4-proxy}\n",
    ),
    (
        "proxy-role-arn",
        "proxy: {assume_role_arn: ampd-writer}\n",
        "proxy.assume_role_arn",
        "is not an ARN",
        "proxy: {assume_role_arn: 'arn:aws:iam::111122223333:role/ampd-writer'}\n",
    ),
    # grafana
    (
        "datasource-keys-without-file",
        "grafana: {datasource: {auth: keys}}\n",
        "grafana.datasource",
        "auth: keys needs credentials_file",
        "grafana: {datasource: {auth: keys, credentials_file: keys.ini}}\n",
    ),
    (
        "datasource-file-without-keys",
        "grafana: {datasource: {auth: default, credentials_file: keys.ini}}\n",
        "grafana.datasource",
        "credentials_file is used only with auth: keys",
        "grafana: {datasource: {auth: default}}\n",
    ),
    (
        "datasource-auth",
        "grafana: {datasource: {auth: static}}\n",
        "grafana.datasource.auth",
        "'ec2_iam_role', 'default' or 'keys'",
        "grafana: {datasource: {auth: ec2_iam_role}}\n",
    ),
    (
        "datasource-via",
        "grafana: {datasource: {via: tunnel}}\n",
        "grafana.datasource.via",
        "'direct' or 'proxy'",
        "grafana: {datasource: {via: direct}}\n",
    ),
    (
        "datasource-name-empty",
        "grafana: {datasource: {name: ''}}\n",
        "grafana.datasource.name",
        "at least 1 character",
        "grafana: {datasource: {name: AMP}}\n",
    ),
    (
        "grafana-binary",
        "grafana: {binary: grafana-server}\n",
        "grafana.binary",
        "is not a valid binary",
        "grafana: {binary: /usr/share/grafana/bin/grafana}\n",
    ),
    # wrong types
    (
        "section-is-list",
        "aws: [region]\n",
        "aws",
        "valid dictionary or instance of AwsSpec",
        "aws: {}\n",
    ),
    (
        "bool-is-word",
        WS + "prometheus: {enabled: maybe}\n",
        "prometheus.enabled",
        "valid boolean",
        WS + "prometheus: {enabled: false}\n",
    ),
    (
        "list-is-string",
        WS + "prometheus: {scrape_configs: app}\n",
        "prometheus.scrape_configs",
        "valid list",
        WS + "prometheus: {scrape_configs: []}\n",
    ),
    (
        "int-is-string",
        "workspace: {alias: a, retention_days: lots}\n",
        "workspace.retention_days",
        "valid integer",
        "workspace: {alias: a, retention_days: 30}\n",
    ),
    (
        "quoted-number",  # strict like the JSON Schema: a quoted number is a string
        "workspace: {alias: a, retention_days: '30'}\n",
        "workspace.retention_days",
        "valid integer",
        "workspace: {alias: a, retention_days: 30}\n",
    ),
    (
        "yes-is-not-a-boolean",  # YAML 1.2: yes is a string, and booleans are strict
        "grafana: {enabled: yes}\n",
        "grafana.enabled",
        "valid boolean",
        "grafana: {enabled: false}\n",
    ),
    (
        "string-is-date",
        "workspace: {alias: 2024-01-01}\n",
        "workspace.alias",
        "valid string",
        "workspace: {alias: '2024-01-01'}\n",
    ),
]


@pytest.mark.parametrize(
    ("bad", "path", "message"), [pytest.param(r[1], r[2], r[3], id=r[0]) for r in ROWS]
)
def test_rejected(bad: str, path: str, message: str) -> None:
    found = problems(bad)
    assert [p.path for p in found] == [path], found
    assert message in found[0].message
    assert found[0].file == FILE


@pytest.mark.parametrize("good", [pytest.param(r[4], id=r[0]) for r in ROWS])
def test_accepted(good: str) -> None:
    loaded = load(good)
    assert loaded.spec.version == 1


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        pytest.param("version: 2\n", False, id="two"),
        pytest.param("version: '1'\n", False, id="string"),
        pytest.param("stack: x\n", False, id="missing"),
        pytest.param("version: 1\n", True, id="one"),
    ],
)
def test_version(text: str, ok: bool) -> None:
    if ok:
        assert load_spec(text, FILE).spec.version == 1
        return
    with pytest.raises(SpecError) as exc:
        load_spec(text, FILE)
    assert [p.path for p in exc.value.problems] == ["version"]


# Unknown keys: a hint with the closest known key, else the list of known keys.
@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        pytest.param(
            "promethues: {}\n",
            "2:1: promethues",
            "unknown key 'promethues'; did you mean 'prometheus'?",
            id="top-level",
        ),
        pytest.param(
            "aws:\n  regoin: eu-west-1\n",
            "3:3: aws.regoin",
            "unknown key 'regoin'; did you mean 'region'?",
            id="nested",
        ),
        pytest.param(
            WS + "prometheus:\n  scrape_configs:\n    - job: a\n      targets: ['h:1']\n"
            "      label: {a: b}\n",
            "7:7: prometheus.scrape_configs[0].label",
            "did you mean 'labels'?",
            id="in-list-item",
        ),
        pytest.param(
            "aws: {zzzzzz: 1}\n",
            "2:7: aws.zzzzzz",
            "unknown key 'zzzzzz'; known keys: region, mode, drift, resync, endpoint_url",
            id="no-close-match",
        ),
        pytest.param(
            "grafana:\n  datasource:\n    assume_role: x\n",
            "4:5: grafana.datasource.assume_role",
            "did you mean 'assume_role_arn'?",
            id="deep",
        ),
    ],
)
def test_unknown_keys(body: str, where: str, message: str) -> None:
    found = problems(body)
    assert len(found) == 1
    assert str(found[0]).startswith(f"{FILE}:{where}: ")
    assert message in found[0].message


# Exact FILE:LINE:COL: keys point at the key, values at the value, both 1-based.
POSITIONS = [
    pytest.param(
        """\
        version: 1
        aws:
          region: eu-west-1
          resync: 5 minutes
        """,
        ["4:11: aws.resync"],
        id="value-column",
    ),
    pytest.param(
        """\
        version: 1
        workspace:
          alias: a
          rule_groups:
            - name: ok
              file: a.yml
            - {name: x}
        """,
        [f"7:7: workspace.rule_groups[1]: {NEEDS_FILE}"],
        id="missing-key-at-item",
    ),
    pytest.param(
        """\
        version: 1
        workspace:
          alias: a
        prometheus:
          scrape_configs:
            - job: a
              targets: ["h:1"]
              labels: {team: x}
              scheme: gopher
        grafana:
          enabled: true
          listen: 127.0.0.1:9090
        """,
        ["9:15: prometheus.scrape_configs[0].scheme"],
        id="type-error-before-semantic",
    ),
    pytest.param(
        """\
        version: 1
        prometheus:
          remote_write: null
          scrape_configs:
            - job: a
              targets: ["h:1"]
              sample_limit: -10
        """,
        ["7:21: prometheus.scrape_configs[0].sample_limit"],
        id="scrape-limit-at-its-line",
    ),
    pytest.param(
        """\
        version: 1
        workspace:
          alias: a
        grafana:
          enabled: true
          listen: 127.0.0.1:9090
        prometheus: {}
        """,
        ["6:11: grafana.listen: port 9090 is already used by prometheus.listen"],
        id="semantic-points-at-value",
    ),
    pytest.param(
        """\
        version: 1
        stack: Bad
        aws: {region: nowhere, mode: dry}
        """,
        ["2:8: stack", "3:15: aws.region", "3:30: aws.mode"],
        id="several-in-file-order",
    ),
]


@pytest.mark.parametrize(("text", "expected"), POSITIONS)
def test_positions(text: str, expected: list[str]) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(dedent(text), "s.yml")
    lines = str(exc.value).splitlines()
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith(f"s.yml:{want}"), line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "version: 1\nstack: a\nstack: b\n",
            "s.yml:3:1: duplicate key: ",
            id="duplicate-top",
        ),
        pytest.param(
            "version: 1\naws:\n  mode: manage\n  region: auto\n  mode: observe\n",
            "s.yml:5:3: duplicate key: ",
            id="duplicate-nested",
        ),
        pytest.param(
            "version: 1\naws: {region: [\n",
            "s.yml:3:1: YAML syntax: ",
            id="unclosed-flow",
        ),
        pytest.param(
            "version: 1\naws:\n  region: eu-west-1\n mode: manage\n",
            "s.yml:4:2: YAML syntax: ",
            id="bad-indent",
        ),
        pytest.param("version: 1\nstack: 'open\n", "s.yml:3:1: YAML syntax: ", id="open-quote"),
        pytest.param("version: 1\n\tstack: a\n", "s.yml:2:1: YAML syntax: ", id="tab-indent"),
        pytest.param("version: *nowhere\n", "s.yml:1:10: YAML syntax: ", id="unknown-alias"),
        pytest.param(
            "",
            "s.yml:1:1: the file is empty; it needs at least version: 1",
            id="empty",
        ),
        pytest.param(
            "# only a comment\n",
            "s.yml:1:1: the file is empty",
            id="only-comments",
        ),
        pytest.param("---\n", "s.yml:1:1: the file is empty", id="only-document-marker"),
        pytest.param(
            "- version: 1\n",
            "s.yml:1:1: the top level must be a mapping (key: value)",
            id="top-level-list",
        ),
        pytest.param("just text\n", "s.yml:1:1: the top level must be a mapping", id="scalar"),
        pytest.param("42\n", "s.yml:1:1: the top level must be a mapping", id="number"),
    ],
)
def test_yaml_and_top_level(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as exc:
        load_spec(text, "s.yml")
    assert len(exc.value.problems) == 1
    assert str(exc.value).startswith(expected), str(exc.value)


def test_duplicate_key_names_the_key() -> None:
    with pytest.raises(SpecError) as exc:
        load_spec("version: 1\nstack: a\nstack: b\n", "s.yml")
    assert '"stack"' in exc.value.problems[0].message


@pytest.mark.parametrize(
    ("file", "ref", "resolved"),
    [
        pytest.param("/etc/ampd/state.yml", "rules/node.yml", "/etc/ampd/rules/node.yml", id="rel"),
        pytest.param("/etc/ampd/state.yml", "/srv/r.yml", "/srv/r.yml", id="absolute-kept"),
        pytest.param("/etc/ampd/state.yml", "../r.yml", "/etc/ampd/../r.yml", id="parent"),
        pytest.param("config/state.yml", "r.yml", "config/r.yml", id="relative-state-file"),
        pytest.param("state.yml", "r.yml", "r.yml", id="state-file-in-cwd"),
    ],
)
def test_referenced_paths_resolve_against_state_file_dir(
    file: str, ref: str, resolved: str
) -> None:
    body = f"""\
        workspace:
          alias: a
          rule_groups: [{{name: g, file: {ref}}}]
          alertmanager: {{file: {ref}}}
        grafana:
          datasource: {{auth: keys, credentials_file: {ref}}}
          dashboards: [{ref}, /abs/dash]
        """
    spec = load(dedent(body), file).spec
    assert spec.workspace is not None
    assert spec.grafana is not None
    assert spec.workspace.alertmanager is not None
    assert spec.workspace.rule_groups[0].file == resolved
    assert spec.workspace.alertmanager.file == resolved
    assert spec.grafana.datasource.credentials_file == resolved
    assert spec.grafana.dashboards == [resolved, "/abs/dash"]


def test_loaded_spec_hash_and_defaults() -> None:
    text = "version: 1\n"
    loaded = load_spec(text, FILE)
    assert loaded.sha256 == hashlib.sha256(text.encode()).hexdigest()
    spec = loaded.spec
    assert spec.stack == "default"
    assert spec.prometheus is None
    assert spec.workspace is None
    assert spec.metrics.listen == "127.0.0.1:9795"
    assert spec.aws_or_default.region == "auto"
    assert spec.aws_or_default.mode == "manage"


def test_problem_points_at_key_or_value() -> None:
    loaded = load_spec("version: 1\naws:\n  region: eu-west-1\n", "s.yml")
    assert str(loaded.problem(("aws", "region"), "m")) == "s.yml:3:11: aws.region: m"
    assert str(loaded.problem(("aws", "region"), "m", key=True)) == "s.yml:3:3: aws.region: m"
    # A field the file does not mention points at its nearest mentioned parent.
    assert loaded.problem(("aws", "resync"), "m").line == 3
    assert loaded.problem(("grafana", "listen"), "m").line == 1


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        ((), ""),
        (("aws",), "aws"),
        (("aws", "region"), "aws.region"),
        (("workspace", "rule_groups", 2, "file"), "workspace.rule_groups[2].file"),
        (("iam", "reader", "trusted", 0), "iam.reader.trusted[0]"),
    ],
)
def test_dotted(loc: tuple[str | int, ...], text: str) -> None:
    assert dotted(loc) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("15s", 15.0), ("5m", 300.0), ("1h", 3600.0), ("2d", 172800.0)],
)
def test_duration_seconds(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "s", "1.5s", "15 s", "-1s", "1w"])
def test_duration_seconds_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        duration_seconds(text)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:9090", ("127.0.0.1", 9090)),
        ("[::1]:8005", ("::1", 8005)),
        ("localhost:3000", ("localhost", 3000)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
    ],
)
def test_split_listen(text: str, parsed: tuple[str, int]) -> None:
    assert split_listen(text) == parsed


def test_spec_is_frozen() -> None:
    spec = load("aws: {region: eu-west-1}\n").spec
    with pytest.raises(ValueError, match="frozen"):
        spec.stack = "other"  # type: ignore[misc]


def test_a_clash_with_a_default_says_it_is_the_default() -> None:
    found = problems("prometheus:\n  listen: 127.0.0.1:9795\n  remote_write: null\n")
    assert [p.path for p in found] == ["metrics.listen"]
    assert "already used by prometheus.listen" in found[0].message
    assert "this is the default value" in found[0].message


def test_a_clash_in_the_file_has_no_default_note() -> None:
    found = problems(
        "prometheus:\n  listen: 127.0.0.1:9000\n  remote_write: null\n"
        "metrics:\n  listen: 127.0.0.1:9000\n"
    )
    assert [(p.path, p.line) for p in found] == [("metrics.listen", 6)]
    assert "default" not in found[0].message


# -- workspace: the configuration's whole seconds, query logging, resource policy --------

_LOGS = "arn:aws:logs:eu-west-1:123456789012:log-group:q:*"
_ORG = "o-abcdefghij/r-ab12/ou-ab12-11111111/"


@pytest.mark.parametrize(
    ("field", "bad", "message", "good"),
    [
        pytest.param(
            "rule_query_offset: 1500ms", "rule_query_offset", "whole seconds", "30s", id="offset"
        ),
        pytest.param(
            "out_of_order_window: 90500ms", "out_of_order_window", "whole seconds", "2m", id="ooo"
        ),
        pytest.param(
            "query_logging: {log_group_arn: 'arn:aws:logs:eu-west-1:123456789012:log-group:q',"
            " qsp_threshold: 1}",
            "query_logging.log_group_arn",
            "ending ':*'",
            f"{{log_group_arn: '{_LOGS}', qsp_threshold: 1}}",
            id="query-log-group",
        ),
        pytest.param(
            f"query_logging: {{log_group_arn: '{_LOGS}', qsp_threshold: -1}}",
            "query_logging.qsp_threshold",
            "greater than or equal to 0",
            f"{{log_group_arn: '{_LOGS}', qsp_threshold: 0}}",
            id="query-threshold",
        ),
        pytest.param(
            f"query_logging: {{log_group_arn: '{_LOGS}'}}",
            "query_logging.qsp_threshold",
            "required",
            f"{{log_group_arn: '{_LOGS}', qsp_threshold: 5}}",
            id="query-threshold-required",
        ),
        pytest.param(
            "resource_policy: {writers: ['12345']}",
            "resource_policy.writers[0]",
            "neither an account id",
            "{writers: ['111122223333', '" + _ORG + "']}",
            id="writer-account",
        ),
        pytest.param(
            "resource_policy: {writers: ['o-abcdefghij/r-ab12/ou-ab12-11111111']}",
            "resource_policy.writers[0]",
            "organization path",
            "{writers: ['" + _ORG + "']}",
            id="writer-org-path",
        ),
        pytest.param(
            "resource_policy: {writers: ['111122223333', '111122223333']}",
            "resource_policy",
            "listed once each",
            "{writers: ['111122223333']}",
            id="writer-twice",
        ),
        pytest.param(
            "resource_policy: {writers: []}",
            "resource_policy.writers",
            "at least 1",
            "{writers: ['111122223333']}",
            id="writers-none",
        ),
    ],
)
def test_workspace_aws_fields_are_named_at_their_line(
    field: str, bad: str, message: str, good: str
) -> None:
    body = f"workspace:\n  alias: w\n  {field}\n"
    found = problems(body)
    assert [p.path for p in found] == [f"workspace.{bad}"], found
    assert message in found[0].message
    assert (found[0].file, found[0].line) == (FILE, 4)  # "version: 1" is line 1
    key = field.split(":", 1)[0]
    assert load(f"workspace:\n  alias: w\n  {key}: {good}\n").spec.workspace is not None


def test_query_log_group_pattern_is_the_amp_models() -> None:
    """The copy in spec/workspace.py is the pattern botocore's amp model gives a query
    logging destination's logGroupArn."""
    import botocore.session  # noqa: PLC0415 (only this test needs it)

    from ampd.spec.workspace import QUERY_LOG_GROUP_ARN  # noqa: PLC0415

    model = botocore.session.get_session().get_service_model("amp")
    for op in ("CreateQueryLoggingConfiguration", "UpdateQueryLoggingConfiguration"):
        destination = model.operation_model(op).input_shape.members["destinations"].member
        arn = destination.members["cloudWatchLogs"].members["logGroupArn"]
        assert arn.metadata["pattern"] == QUERY_LOG_GROUP_ARN.pattern, op
