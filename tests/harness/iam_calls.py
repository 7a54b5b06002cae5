"""What IAM authorizes for each recorded AWS call: (action, resource ARN, context).

Written from AWS's Service Authorization Reference, independently of ampd's own policy
builders, so that a test can hold ampd's printed policies against the calls ampd really
makes (``tests.harness.iam_eval`` decides). A call this table does not know fails the
test (:class:`UnknownCall`): a new AWS call in ampd needs a line here, and a thought about
the permission it needs.

Some calls need more than their own action: CreateRole with tags also needs
``iam:TagRole``; CreateWorkspace and CreateRuleGroupsNamespace with tags also need
``aps:TagResource``; AddRoleToInstanceProfile passes the role (``iam:PassRole``); S3's
HeadObject is authorized as ``s3:GetObject``. ``sts:GetCallerIdentity`` needs no permission.
The workspace's configuration, its logging and query logging configurations and its
resource policy are authorized on the workspace's ARN; the Price List
(``pricing:GetProducts``) has no resource-level permissions: ``*``.
AppConfig's Data API (StartConfigurationSession, GetLatestConfiguration) is authorized on
the configuration profile's ARN, by ids, whatever names the request used.
The data plane (remote write, queries) is mapped from the paths the AMP stand-in saw.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from tests.harness.aws_emulator import ACCOUNT_ID, Recorded
from tests.harness.iam_eval import Request

__all__ = ["UnknownCall", "authorizations", "data_plane_authorizations", "partition_of"]


class UnknownCall(AssertionError):
    """A recorded call whose authorization this table does not describe."""


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


_ROLE_OPS = frozenset(
    {
        "GetRole",
        "UpdateAssumeRolePolicy",
        "TagRole",
        "UntagRole",
        "ListRoleTags",
        "DeleteRole",
        "GetRolePolicy",
        "ListRolePolicies",
        "ListAttachedRolePolicies",
        "ListInstanceProfilesForRole",
    }
)
_PROFILE_OPS = frozenset(
    {
        "GetInstanceProfile",
        "DeleteInstanceProfile",
        "TagInstanceProfile",
        "RemoveRoleFromInstanceProfile",
    }
)
_WORKSPACE_OPS = frozenset(
    {
        "DescribeWorkspace",
        "DeleteWorkspace",
        "UpdateWorkspaceAlias",
        "DescribeWorkspaceConfiguration",
        "UpdateWorkspaceConfiguration",
        "DescribeLoggingConfiguration",
        "CreateLoggingConfiguration",
        "UpdateLoggingConfiguration",
        "DeleteLoggingConfiguration",
        "DescribeQueryLoggingConfiguration",
        "CreateQueryLoggingConfiguration",
        "UpdateQueryLoggingConfiguration",
        "DeleteQueryLoggingConfiguration",
        "DescribeResourcePolicy",
        "PutResourcePolicy",
        "DeleteResourcePolicy",
        "DescribeAlertManagerDefinition",
        "CreateAlertManagerDefinition",
        "PutAlertManagerDefinition",
        "DeleteAlertManagerDefinition",
        "ListRuleGroupsNamespaces",
    }
)
_NAMESPACE_OPS = frozenset(
    {"DescribeRuleGroupsNamespace", "PutRuleGroupsNamespace", "DeleteRuleGroupsNamespace"}
)
_WS_PATH = re.compile(r"^/workspaces/(?P<ws>[^/]+)(?:/rulegroupsnamespaces/(?P<ns>[^/]+))?")


def _form_tags(params: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 1
    while f"Tags.member.{i}.Key" in params:
        out[str(params[f"Tags.member.{i}.Key"])] = str(params.get(f"Tags.member.{i}.Value", ""))
        i += 1
    return out


def _request_tags(tags: Mapping[str, str]) -> dict[str, str | list[str]]:
    ctx: dict[str, str | list[str]] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        ctx["aws:TagKeys"] = sorted(tags)
    return ctx


# IAM actions that carry the role's permissions boundary as iam:PermissionsBoundary
_BOUNDARY_KEYED = frozenset(
    {"PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy", "DetachRolePolicy"}
)


def _iam(rec: Recorded, part: str) -> list[Request]:
    """The role's or instance profile's tags (``aws:ResourceTag/...``) and a role's
    boundary are what the emulator saw in IAM when the request arrived."""
    p, op = rec.params, rec.operation
    role = f"arn:{part}:iam::{ACCOUNT_ID}:role/{p.get('RoleName')}"
    profile = f"arn:{part}:iam::{ACCOUNT_ID}:instance-profile/{p.get('InstanceProfileName')}"
    seen = p.get("_context") or {}
    role_ctx = dict(seen.get("role") or {})
    role_tags = {k: v for k, v in role_ctx.items() if k.startswith("aws:ResourceTag/")}
    profile_tags = dict(seen.get("instance_profile") or {})
    action = f"iam:{op}"
    if op == "CreateRole":
        ctx: dict[str, str | list[str]] = {}
        if p.get("PermissionsBoundary"):
            ctx["iam:PermissionsBoundary"] = str(p["PermissionsBoundary"])
        tags = _form_tags(p)
        out = [Request(action, role, {**ctx, **_request_tags(tags)})]
        if tags:
            out.append(Request("iam:TagRole", role, _request_tags(tags)))
        return out
    if op == "PutRolePermissionsBoundary":
        return [Request(action, role, {"iam:PermissionsBoundary": str(p["PermissionsBoundary"])})]
    if op in _BOUNDARY_KEYED:
        ctx = {k: v for k, v in role_ctx.items() if k == "iam:PermissionsBoundary"}
        if op in ("AttachRolePolicy", "DetachRolePolicy"):
            ctx["iam:PolicyARN"] = str(p["PolicyArn"])
        return [Request(action, role, {**role_tags, **ctx})]
    if op in _ROLE_OPS:
        ctx = _request_tags(_form_tags(p)) if op == "TagRole" else {}
        return [Request(action, role, {**role_tags, **ctx})]
    if op == "CreateInstanceProfile":
        tags = _form_tags(p)
        out = [Request(action, profile, _request_tags(tags))]
        if tags:
            out.append(Request("iam:TagInstanceProfile", profile, _request_tags(tags)))
        return out
    if op == "AddRoleToInstanceProfile":
        return [Request(action, profile, profile_tags), Request("iam:PassRole", role, role_tags)]
    if op in _PROFILE_OPS:
        return [Request(action, profile, profile_tags)]
    if op == "SimulatePrincipalPolicy":
        return [Request(action, str(p["PolicySourceArn"]))]
    raise UnknownCall(f"iam:{op}: no authorization known for it")


def _aps(rec: Recorded, part: str) -> list[Request]:
    op, path = rec.operation, rec.path
    base = f"arn:{part}:aps:{rec.region}:{ACCOUNT_ID}"
    action = f"aps:{op}"
    if op == "ListWorkspaces":
        return [Request(action, "*")]
    if op == "CreateWorkspace":
        tags = {str(k): str(v) for k, v in (rec.params.get("tags") or {}).items()}
        ctx = _request_tags(tags)
        out = [Request(action, f"{base}:workspace/*", ctx)]
        if tags:
            out.append(Request("aps:TagResource", f"{base}:workspace/*", ctx))
        return out
    if op in ("TagResource", "UntagResource", "ListTagsForResource"):
        arn = urllib.parse.unquote(path.removeprefix("/tags/"))
        tags = {str(k): str(v) for k, v in (rec.params.get("tags") or {}).items()}
        return [Request(action, arn, _request_tags(tags) if op == "TagResource" else {})]
    m = _WS_PATH.match(path)
    if m is None:
        raise UnknownCall(f"aps:{op} {path}: no workspace in the path")
    ws_arn = f"{base}:workspace/{m['ws']}"
    if op == "CreateRuleGroupsNamespace":
        tags = {str(k): str(v) for k, v in (rec.params.get("tags") or {}).items()}
        ns_arn = f"{base}:rulegroupsnamespace/{m['ws']}/{rec.params.get('name')}"
        out = [Request(action, ws_arn, _request_tags(tags))]
        if tags:
            out.append(Request("aps:TagResource", ns_arn, _request_tags(tags)))
        return out
    if op in _NAMESPACE_OPS:
        ns = urllib.parse.unquote(m["ns"] or "")
        return [Request(action, f"{base}:rulegroupsnamespace/{m['ws']}/{ns}")]
    if op in _WORKSPACE_OPS:
        return [Request(action, ws_arn)]
    raise UnknownCall(f"aps:{op}: no authorization known for it")


def authorizations(rec: Recorded) -> list[Request]:
    """What IAM checks for one recorded call (empty: it needs no permission)."""
    part = partition_of(rec.region)
    if rec.service == "sts":
        if rec.operation == "GetCallerIdentity":
            return []  # "No permissions are required to perform this operation."
        if rec.operation == "AssumeRole":
            return [Request("sts:AssumeRole", str(rec.params["RoleArn"]))]
    if rec.service == "iam":
        return _iam(rec, part)
    if rec.service == "aps":
        return _aps(rec, part)
    if rec.service == "ssm" and rec.operation in ("GetParameters", "GetParameter"):
        names = rec.params.get("Names") or [rec.params.get("Name")]
        return [
            Request(
                f"ssm:{rec.operation}",
                f"arn:{part}:ssm:{rec.region}:{ACCOUNT_ID}:parameter/{str(n).lstrip('/')}",
            )
            for n in names
        ]
    if rec.service == "appconfigdata" and rec.operation in (
        "StartConfigurationSession",
        "GetLatestConfiguration",
    ):  # the configuration profile, by ids (the emulator records them: "_ids")
        ids = rec.params.get("_ids")
        if not ids:
            raise UnknownCall(f"appconfigdata:{rec.operation}: the profile it reads is unknown")
        app, env, profile = ids
        arn = (
            f"arn:{part}:appconfig:{rec.region}:{ACCOUNT_ID}:application/{app}"
            f"/environment/{env}/configuration/{profile}"
        )
        return [Request(f"appconfig:{rec.operation}", arn)]
    if rec.service == "pricing" and rec.operation == "GetProducts":
        return [Request("pricing:GetProducts", "*")]  # no resource-level permissions
    if rec.service == "s3" and rec.operation in ("GetObject", "HeadObject"):
        return [Request("s3:GetObject", f"arn:{part}:s3:::{rec.path.lstrip('/')}")]
    raise UnknownCall(f"{rec.service}:{rec.operation}: no authorization known for it")


_DATA_PLANE = {
    "remote_write": "aps:RemoteWrite",
    "query": "aps:QueryMetrics",
    "query_range": "aps:QueryMetrics",
    "series": "aps:GetSeries",
    "labels": "aps:GetLabels",
    "metadata": "aps:GetMetricMetadata",
}


def data_plane_authorizations(path: str, region: str) -> list[Request]:
    """An AMP data-plane request, as the stand-in saw its path."""
    m = re.match(r"^/workspaces/(?P<ws>[^/]+)/api/v1/(?P<ep>.+)$", path)
    if m is None:
        raise UnknownCall(f"data plane {path}: not a workspace endpoint")
    ep = "labels" if m["ep"].startswith("label/") else m["ep"]
    if ep not in _DATA_PLANE:
        raise UnknownCall(f"data plane {path}: no authorization known for it")
    arn = f"arn:{partition_of(region)}:aps:{region}:{ACCOUNT_ID}:workspace/{m['ws']}"
    return [Request(_DATA_PLANE[ep], arn)]
