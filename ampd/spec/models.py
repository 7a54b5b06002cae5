"""The state file, version 1, as immutable pydantic models.

Every section except ``version`` is optional: a host that only runs Prometheus, or only
manages AWS from a CI job, is a normal use. Unknown keys are errors.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from ampd.spec.named import NamedFile, named_files

_DURATION_RE = re.compile(r"^(?P<n>\d+)(?P<unit>ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_seconds(text: str) -> float:
    """``15s`` -> 15.0. Raises ValueError for anything else."""
    m = _DURATION_RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration: use a number and a unit, e.g. 15s, 5m, 1h")
    return int(m.group("n")) * _UNIT_SECONDS[m.group("unit")]


def _check_duration(text: str) -> str:
    if duration_seconds(text) <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return text


Duration = Annotated[
    str,
    StringConstraints(pattern=r"^\d+(ms|s|m|h|d)$"),
    AfterValidator(_check_duration),
    Field(json_schema_extra={"examples": ["15s", "5m", "1h"]}),
]


def split_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:9090")
    host = host.strip("[]")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address or 'localhost'") from None
    n = int(port)
    if not 1 <= n <= 65535:
        raise ValueError(f"port {n} is out of range 1-65535")
    return host, n


def _check_listen(text: str) -> str:
    split_listen(text)
    return text


Listen = Annotated[
    str, AfterValidator(_check_listen), Field(json_schema_extra={"examples": ["127.0.0.1:9090"]})
]

_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")


def _check_region(text: str) -> str:
    if text != "auto" and not _REGION_RE.match(text):
        raise ValueError(f"{text!r} is not an AWS region (e.g. eu-west-1) or 'auto'")
    return text


Region = Annotated[str, AfterValidator(_check_region)]

_ARN_RE = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$")


def _check_arn(text: str) -> str:
    if not _ARN_RE.match(text):
        raise ValueError(f"{text!r} is not an ARN (arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE)")
    return text


Arn = Annotated[str, AfterValidator(_check_arn)]

# AMP: alias 1-100 characters; IAM role names 1-64 of [\w+=,.@-].
Alias = Annotated[str, StringConstraints(min_length=1, max_length=100)]
IamName = Annotated[str, StringConstraints(pattern=r"^[\w+=,.@-]{1,64}$")]
StackName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
LabelName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
AbsPath = Annotated[str, StringConstraints(pattern=r"^/")]
# Files the state file refers to: absolute, or relative to the state file's directory.
FilePath = Annotated[str, StringConstraints(min_length=1)]
# A local user name, as useradd(8) accepts it on Debian (NAME_REGEX).
UserName = Annotated[
    str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,30}\$?$", min_length=1, max_length=32)
]


class Strict(BaseModel):
    # strict: YAML already gives real types, so "yes" for a boolean or "15" for a number
    # is a mistake (and the JSON Schema says so too)
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AwsSpec(Strict):
    region: Region = "auto"
    mode: Literal["manage", "observe"] = "manage"
    drift: Literal["correct", "report"] = "correct"
    resync: Duration = "5m"
    endpoint_url: str | None = None
    data_plane_url: str | None = None


class LoggingSpec(Strict):
    log_group_arn: Arn | None = None


class RuleGroupSpec(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$")]
    file: FilePath


class AlertmanagerSpec(Strict):
    file: FilePath


class WorkspaceSpec(Strict):
    alias: Alias | None = None
    id: Annotated[str, StringConstraints(pattern=r"^ws-[0-9a-zA-Z-]{1,64}$")] | None = None
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    retention_days: Annotated[int, Field(ge=1, le=1095)] | None = None
    kms_key_arn: Arn | None = None
    logging: LoggingSpec | None = None
    rule_groups: list[RuleGroupSpec] = Field(default_factory=list)
    alertmanager: AlertmanagerSpec | None = None
    deletion: Literal["retain", "delete"] = "retain"

    @model_validator(mode="after")
    def _alias_or_id(self) -> WorkspaceSpec:
        if self.alias is None and self.id is None:
            raise ValueError("name the workspace: set alias (to create or find it) or id")
        names = [g.name for g in self.rule_groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule group names must be unique; repeated: {', '.join(dupes)}")
        for key in self.tags:
            if key.startswith(("ampd:", "aws:")):
                raise ValueError(f"tag {key!r}: the ampd: and aws: prefixes are reserved")
        return self


class WriterSpec(Strict):
    role_name: IamName = "ampd-writer"
    instance_profile: IamName | None = "ampd-writer"
    policy: Literal["scoped", "managed"] = "scoped"
    manage: bool = True


_PRINCIPAL_RE = re.compile(
    r"^arn:aws[a-z-]*:(iam::\d{12}:(root|role/.+|user/.+)|sts::\d{12}:assumed-role/.+)$"
)
AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]


def _check_principal(text: str) -> str:
    _check_arn(text)
    if not _PRINCIPAL_RE.match(text):
        raise ValueError(
            f"{text!r} is not an IAM principal: a role, user or account root ARN "
            "(arn:aws:iam::ACCOUNT:role/NAME)"
        )
    return text


Principal = Annotated[str, AfterValidator(_check_principal)]


def _check_policy_ref(text: str) -> str:
    if text.startswith("arn:"):
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:policy/[\w+=,.@/-]{1,128}$", text):
            raise ValueError(f"{text!r} is not a policy ARN (arn:aws:iam::ACCOUNT:policy/NAME)")
    elif not re.match(r"^[\w+=,.@-]{1,128}$", text):
        raise ValueError(f"{text!r} is not a policy name or ARN")
    return text


PolicyRef = Annotated[str, AfterValidator(_check_policy_ref)]


class ReaderSpec(Strict):
    role_name: IamName = "ampd-reader"
    policy: Literal["scoped", "managed"] = "scoped"
    manage: bool = True
    # principals in this host's own account only, unless their account is listed below
    trusted: list[Literal["writer"] | Principal] = Field(default_factory=lambda: ["writer"])
    trusted_accounts: list[AccountId] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_own_account(self) -> ReaderSpec:
        accounts = {t.split(":")[4] for t in self.trusted if t != "writer"}
        foreign = sorted(accounts - set(self.trusted_accounts))
        if len(foreign) > 1:
            raise ValueError(
                f"trusted names principals in accounts {', '.join(foreign)}: only this "
                "host's own account is trusted unless iam.reader.trusted_accounts lists it"
            )
        return self


class IamSpec(Strict):
    writer: WriterSpec | None = None
    reader: ReaderSpec | None = None
    # every role ampd creates carries this permissions boundary: a policy name in this
    # account or its ARN; default ampd-boundary-<stack> (`ampd policy boundary` prints it)
    permissions_boundary: PolicyRef | None = None


class ScrapeConfigSpec(Strict):
    job: LabelName
    targets: Annotated[list[str], Field(min_length=1)]
    metrics_path: AbsPath = "/metrics"
    interval: Duration | None = None
    scheme: Literal["http", "https"] = "http"
    labels: dict[LabelName, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _targets(self) -> ScrapeConfigSpec:
        for t in self.targets:
            host, sep, port = t.rpartition(":")
            if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"target {t!r} is not HOST:PORT")
        return self


class QueueSpec(Strict):
    capacity: Annotated[int, Field(ge=1)] = 10000
    max_samples_per_send: Annotated[int, Field(ge=1)] = 2000
    max_shards: Annotated[int, Field(ge=1)] | None = None


class RemoteWriteSpec(Strict):
    signing: Literal["auto", "native", "proxy"] = "auto"
    queue: QueueSpec = Field(default_factory=QueueSpec)


InstanceLabel = Literal[
    "instance_id", "availability_zone", "instance_type", "region", "account_id", "image_id"
]


class PrometheusSpec(Strict):
    enabled: bool = True
    binary: AbsPath = "/usr/bin/prometheus"
    mode: Literal["agent", "server"] = "agent"
    listen: Listen = "127.0.0.1:9090"
    allow_non_loopback: bool = False
    scrape_interval: Duration = "15s"
    retention: Duration | None = None
    external_labels: dict[LabelName, str] = Field(default_factory=dict)
    instance_labels: list[InstanceLabel] = Field(default_factory=list)
    scrape_configs: list[ScrapeConfigSpec] = Field(default_factory=list)
    remote_write: RemoteWriteSpec | None = Field(default_factory=RemoteWriteSpec)

    @model_validator(mode="after")
    def _jobs_unique(self) -> PrometheusSpec:
        jobs = [s.job for s in self.scrape_configs]
        dupes = sorted({j for j in jobs if jobs.count(j) > 1})
        if dupes:
            raise ValueError(f"scrape job names must be unique; repeated: {', '.join(dupes)}")
        if self.retention is not None and self.mode == "agent":
            raise ValueError("retention applies to mode: server only (agent keeps only a WAL)")
        return self


class ProxySpec(Strict):
    enabled: Literal["auto"] | bool = "auto"
    listen: Listen = "127.0.0.1:8005"
    implementation: Literal["builtin", "aws-sigv4-proxy"] = "builtin"
    binary: AbsPath | None = None
    allow_non_loopback: bool = False
    assume_role_arn: Arn | None = None
    allowed_users: list[UserName] | None = None


class DatasourceSpec(Strict):
    name: Annotated[str, StringConstraints(min_length=1)] = "Amazon Managed Prometheus"
    auth: Literal["ec2_iam_role", "default", "keys"] = "ec2_iam_role"
    assume_role_arn: Arn | None = None
    credentials_file: FilePath | None = None
    via: Literal["direct", "proxy"] = "direct"
    default: bool = True

    @model_validator(mode="after")
    def _keys(self) -> DatasourceSpec:
        if self.auth == "keys" and self.credentials_file is None:
            raise ValueError("auth: keys needs credentials_file (keys never go in this file)")
        if self.auth != "keys" and self.credentials_file is not None:
            raise ValueError("credentials_file is used only with auth: keys")
        return self


class GrafanaSpec(Strict):
    enabled: bool = False
    binary: AbsPath = "/usr/sbin/grafana-server"
    homepath: AbsPath | None = None
    listen: Listen = "127.0.0.1:3000"
    allow_non_loopback: bool = False
    datasource: DatasourceSpec = Field(default_factory=DatasourceSpec)
    dashboards: list[FilePath] = Field(default_factory=list)


class MetricsSpec(Strict):
    enabled: bool = True
    listen: Listen = "127.0.0.1:9795"
    allow_non_loopback: bool = False
    scrape: bool = True


_LOCATION_RE = re.compile(r"^(ssm:[A-Za-z0-9_.\-/]+|s3://[a-z0-9][a-z0-9.\-]{1,62}/.+)$")


def _check_location(text: str) -> str:
    if not _LOCATION_RE.match(text) or text.endswith("/"):
        raise ValueError(f"{text!r} is not a state location: use ssm:NAME or s3://BUCKET/KEY")
    return text


class StateSourceSpec(Strict):
    """How ampd follows a state document held in SSM Parameter Store or S3."""

    # looked at this often, with +-20 % jitter so a fleet does not poll in step
    poll_interval: Duration = "60s"
    # where the fleet's hosts read this state; with iam.writer managed, the writer role
    # may read exactly this parameter or object (and the files named beside it)
    location: Annotated[str, AfterValidator(_check_location)] | None = None

    @model_validator(mode="after")
    def _not_too_often(self) -> StateSourceSpec:
        if duration_seconds(self.poll_interval) < 5:
            raise ValueError("poll_interval must be at least 5s (Parameter Store rate limits)")
        return self


class RolloutSpec(Strict):
    """How a remote (ssm:/s3://) state may change a running host."""

    # a version that stops Prometheus, drops remote_write or the workspace, or more than
    # half of the scrape jobs is held on running hosts unless it says so here
    allow_destructive: bool = False


class StateSpec(Strict):
    version: Literal[1]
    stack: StackName = "default"
    aws: AwsSpec | None = None
    workspace: WorkspaceSpec | None = None
    iam: IamSpec | None = None
    prometheus: PrometheusSpec | None = None
    proxy: ProxySpec | None = None
    grafana: GrafanaSpec | None = None
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    state_source: StateSourceSpec = Field(default_factory=StateSourceSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    runtime: Literal["auto", "systemd", "supervisor"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _remote_write_follows_context(cls, data: Any) -> Any:
        """``prometheus.remote_write`` left out is on exactly when there is a workspace to
        write to (its URL follows from the workspace, or ``aws.data_plane_url`` and its
        id). A Prometheus-only file is valid as it is."""
        if not isinstance(data, dict):
            return data
        prom = data.get("prometheus")
        if not isinstance(prom, dict) or "remote_write" in prom:
            return data
        if data.get("workspace") is not None:
            return data
        return {**data, "prometheus": {**prom, "remote_write": None}}

    @property
    def aws_or_default(self) -> AwsSpec:
        return self.aws if self.aws is not None else AwsSpec()

    def named_files(self) -> tuple[NamedFile, ...]:
        """The one list of the files this spec names, in field order: the rule-group and
        alert manager files (``pushed``: their bytes go to AWS, and a remote state
        fetches them from beside itself), the dashboards and the Grafana credentials
        file. The watcher, the input fingerprint, the remote fetch, validation and the
        AWS side's file reads all use it."""
        return named_files(self)
