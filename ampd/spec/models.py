"""The state file, version 1, as immutable pydantic models.

Every section except ``version`` is optional: a host that only runs Prometheus, or only
manages AWS from a CI job, is a normal use. Unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    model_validator,
)

from ampd.spec.cost import BudgetSpec, CostSpec, PriceTierSpec, RegionPriceSpec
from ampd.spec.iam import (
    AccountId,
    IamSpec,
    PolicyRef,
    Principal,
    ReaderSpec,
    WriterSpec,
)
from ampd.spec.named import NamedFile, named_files
from ampd.spec.prometheus import (
    InstanceLabel,
    PrometheusSpec,
    QueueSpec,
    RemoteWriteSpec,
    ScrapeConfigSpec,
)
from ampd.spec.types import (
    AbsPath,
    Alias,
    Arn,
    Duration,
    FilePath,
    IamName,
    LabelName,
    Listen,
    Region,
    StackName,
    Strict,
    TagKey,
    TagValue,
    UserName,
    duration_seconds,
    split_listen,
)
from ampd.spec.workspace import (
    AlertmanagerSpec,
    LabelSetLimitSpec,
    LoggingSpec,
    QueryLoggingSpec,
    ResourcePolicySpec,
    RuleGroupSpec,
    WorkspaceSpec,
)

__all__ = [
    "AbsPath",
    "AccountId",
    "AlertmanagerSpec",
    "Alias",
    "Arn",
    "AwsSpec",
    "BudgetSpec",
    "CostSpec",
    "DatasourceSpec",
    "Duration",
    "FilePath",
    "GrafanaSpec",
    "IamName",
    "IamSpec",
    "InstanceLabel",
    "LabelName",
    "LabelSetLimitSpec",
    "Listen",
    "LoggingSpec",
    "MetricsSpec",
    "NamedFile",
    "PolicyRef",
    "PriceTierSpec",
    "Principal",
    "PrometheusSpec",
    "ProxySpec",
    "QueryLoggingSpec",
    "QueueSpec",
    "ReaderSpec",
    "Region",
    "RegionPriceSpec",
    "RemoteWriteSpec",
    "ResourcePolicySpec",
    "RolloutSpec",
    "RuleGroupSpec",
    "ScrapeConfigSpec",
    "StackName",
    "StateSourceSpec",
    "StateSpec",
    "Strict",
    "TagKey",
    "TagValue",
    "UserName",
    "WorkspaceSpec",
    "WriterSpec",
    "duration_seconds",
    "split_listen",
]


class AwsSpec(Strict):
    region: Region = "auto"
    mode: Literal["manage", "observe"] = "manage"
    drift: Literal["correct", "report"] = "correct"
    resync: Duration = "5m"
    endpoint_url: str | None = None
    data_plane_url: str | None = None


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
_APPCONFIG_ID = r"[a-z0-9]{7}"  # the ids AppConfig gives applications, environments, profiles
_APPCONFIG_RE = re.compile(rf"^appconfig:{_APPCONFIG_ID}/{_APPCONFIG_ID}/{_APPCONFIG_ID}$")


def _check_location(text: str) -> str:
    if text.startswith("appconfig:"):
        if not _APPCONFIG_RE.match(text):
            raise ValueError(
                f"{text!r}: IAM scopes AppConfig by id, so this location names the"
                " application, environment and configuration profile by their ids"
                " (appconfig:abc1234/def5678/ghi9012; `aws appconfig list-applications`"
                " shows them)"
            )
        return text
    if not _LOCATION_RE.match(text) or text.endswith("/"):
        raise ValueError(
            f"{text!r} is not a state location: use ssm:NAME, s3://BUCKET/KEY"
            " or appconfig:APP_ID/ENV_ID/PROFILE_ID"
        )
    return text


class StateSourceSpec(Strict):
    """How ampd follows a state document held in SSM Parameter Store, S3 or AppConfig."""

    # looked at this often, with +-20 % jitter so a fleet does not poll in step
    poll_interval: Duration = "60s"
    # where the fleet's hosts read this state; with iam.writer managed, the writer role
    # may read exactly this parameter, object or AppConfig profile (and the files named
    # beside it); AppConfig's poll interval is at least 15s (the server's floor)
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
    budget: BudgetSpec | None = None
    cost: CostSpec | None = None

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
