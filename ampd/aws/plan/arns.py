"""IAM ARNs in the region's partition, and the inline policies of the roles ampd manages
(the writer's ``ampd-remote-write``, the reader's ``ampd-query``), scoped to the workspace
and to the state's own parameter or key prefix. Pure. The policies ampd itself needs are
in ``ampd.aws.plan.policy``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERSION = "2012-10-17"
WRITER_INLINE = "ampd-remote-write"
READER_INLINE = "ampd-query"
REMOTE_WRITE_MANAGED_NAME = "AmazonPrometheusRemoteWriteAccess"
QUERY_MANAGED_NAME = "AmazonPrometheusQueryAccess"
QUERY_ACTIONS = ("aps:GetLabels", "aps:GetMetricMetadata", "aps:GetSeries", "aps:QueryMetrics")
SSM_READ = ["ssm:GetParameter", "ssm:GetParameters"]
PRICE_LIST_READ = "pricing:GetProducts"
# the AppConfig Data API: one session per profile, then its polls
APPCONFIG_READ = ["appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"]


_ISO_RE = re.compile(r"^[a-z]{2}-iso([a-z]?)-")


def partition(region: str) -> str:
    """The ARN partition of ``region``: ``aws``, ``aws-cn`` (cn-*), ``aws-us-gov``
    (us-gov-*), or one of the isolated ones (``aws-iso``, ``aws-iso-b``, ...)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    m = _ISO_RE.match(region)
    if m:
        return f"aws-iso-{m.group(1)}" if m.group(1) else "aws-iso"
    return "aws"


_PRINCIPAL_RE = re.compile(r"^arn:(?P<partition>aws[a-z-]*):(?:iam|sts)::(?P<account>\d{12}):")


def principal_account(arn: str) -> str | None:
    """The account of an IAM/STS principal ARN, or None when ``arn`` is not one."""
    m = _PRINCIPAL_RE.match(arn)
    return m.group("account") if m else None


def role_arn_of_caller(caller: str) -> str | None:
    """The IAM ARN to simulate for a caller: a role for an assumed-role session
    (``arn:P:sts::A:assumed-role/NAME/SESSION`` -> ``arn:P:iam::A:role/NAME``: a role with a
    path is not found this way), a user as it is; None for root or anything else."""
    m = re.match(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/", caller)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    if re.match(r"^arn:aws[a-z-]*:iam::\d{12}:(user|role)/.+", caller):
        return caller
    return None


@dataclass(frozen=True)
class Arns:
    """ARNs of one partition, region and account."""

    partition: str
    region: str
    account: str

    @staticmethod
    def of(region: str, account: str) -> Arns:
        return Arns(partition(region), region, account)

    def workspace(self, workspace_id: str | None) -> str:
        """The workspace's ARN; every workspace of this region and account (``workspace/*``)
        while its id is not known."""
        return self.aps(f"workspace/{workspace_id or '*'}")

    def aps(self, resource: str) -> str:
        return f"arn:{self.partition}:aps:{self.region}:{self.account}:{resource}"

    def role(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{name}"

    def instance_profile(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:instance-profile/{name}"

    def policy(self, name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:policy/{name}"

    def aws_managed_policy(self, name: str) -> str:
        return f"arn:{self.partition}:iam::aws:policy/{name}"

    def ssm_parameter(self, name: str) -> str:
        return f"arn:{self.partition}:ssm:{self.region}:{self.account}:parameter/{name.lstrip('/')}"

    def s3_object(self, bucket_and_key: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket_and_key}"

    def appconfig_profile(self, app_env_profile: str) -> str:
        """``APP_ID/ENV_ID/PROFILE_ID`` (``*`` for every profile) as the configuration ARN
        that the Data API's actions are scoped to."""
        app, env, profile = app_env_profile.split("/", 2)
        return (
            f"arn:{self.partition}:appconfig:{self.region}:{self.account}:application/{app}"
            f"/environment/{env}/configuration/{profile}"
        )

    @staticmethod
    def from_workspace_arn(ws_arn: str) -> Arns:
        parts = ws_arn.split(":")
        return Arns(parts[1], parts[3], parts[4])


def workspace_children(ws_arn: str) -> str:
    """The rule-groups namespaces of a workspace (or of every workspace, for a pattern)."""
    return ws_arn.replace(":workspace/", ":rulegroupsnamespace/", 1) + (
        "" if ws_arn.endswith("/*") else "/*"
    )


def statement(
    sid: str,
    actions: Iterable[str],
    resources: str | Sequence[str],
    condition: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    res: str | list[str] = resources if isinstance(resources, str) else list(resources)
    if isinstance(res, list) and len(res) == 1:
        res = res[0]
    out: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": res}
    if condition:
        out["Condition"] = dict(condition)
    return out


def document(statements: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": [s for s in statements if s is not None]}


def price_list_statement() -> dict[str, Any]:
    """The AWS Price List, which the ingest side reads for the Region's prices
    (``ampd.ingest``). It has no resource-level permissions: its one resource is ``*``."""
    return statement("AmpdReadPrices", [PRICE_LIST_READ], "*")


# -- the state document and the files beside it --------------------------------------------


def state_read_statement(location: str, ws_arn: str) -> dict[str, Any]:
    """Read access to exactly the state document at ``location`` (``ssm:NAME``,
    ``s3://BUCKET/KEY`` or ``appconfig:APP_ID/ENV_ID/PROFILE_ID``), in the workspace's
    partition, region and account."""
    arns = Arns.from_workspace_arn(ws_arn)
    if location.startswith("appconfig:"):
        return statement("AmpdReadState", APPCONFIG_READ, arns.appconfig_profile(location[10:]))
    if location.startswith("ssm:"):
        return statement("AmpdReadState", SSM_READ, arns.ssm_parameter(location[4:]))
    return statement("AmpdReadState", ["s3:GetObject"], arns.s3_object(location[5:]))


def state_prefix(location: str) -> str | None:
    """The prefix the files a state names are read from (the state's own SSM path, or its
    S3 key's directory, ending in ``/``), as ``ampd.gateways.statesource`` reads them.
    None at the top (``ssm:ampd``, ``ssm:/ampd``, ``s3://bucket/ampd.yml``), whose prefix
    would be every parameter or object there: such a state gets no files beside it. An
    AppConfig state's prefix is its ``APP/ENV/``: the profiles beside it."""
    if location.startswith("appconfig:"):
        return location[10:].rpartition("/")[0] + "/"
    name = location[4:] if location.startswith("ssm:") else location[5:].partition("/")[2]
    head, sep, _ = name.rpartition("/")
    if not head.strip("/"):
        return None
    prefix = head + sep
    if location.startswith("ssm:"):
        return prefix
    return location[5:].partition("/")[0] + "/" + prefix


def state_files_statement(location: str, ws_arn: str) -> dict[str, Any] | None:
    """Read access to the files beside the state: its SSM path or S3 key prefix."""
    prefix = state_prefix(location)
    if prefix is None:
        return None
    arns = Arns.from_workspace_arn(ws_arn)
    if location.startswith("appconfig:"):
        profiles = arns.appconfig_profile(prefix + "*")
        return statement("AmpdReadStateFiles", APPCONFIG_READ, profiles)
    if location.startswith("ssm:"):
        return statement("AmpdReadStateFiles", SSM_READ, arns.ssm_parameter(prefix) + "*")
    return statement("AmpdReadStateFiles", ["s3:GetObject"], arns.s3_object(prefix) + "*")


def state_statements(location: str | None, ws_arn: str) -> list[dict[str, Any] | None]:
    if location is None:
        return []
    return [state_read_statement(location, ws_arn), state_files_statement(location, ws_arn)]


# -- the inline policies of the roles ampd manages -----------------------------------------


def writer_policy(ws_arn: str, state_location: str | None = None) -> dict[str, Any]:
    """The writer role's ``ampd-remote-write``: samples into this workspace, and the
    fleet's state with the files beside it."""
    return document(
        [
            statement("AmpdRemoteWrite", ["aps:RemoteWrite"], ws_arn),
            *state_statements(state_location, ws_arn),
        ]
    )


def reader_policy(ws_arn: str) -> dict[str, Any]:
    return document([statement("AmpdQuery", QUERY_ACTIONS, ws_arn)])
