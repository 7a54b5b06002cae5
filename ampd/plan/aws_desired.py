"""The desired AWS state, from the spec: the workspace, its children, IAM. Pure.

Every resource ampd creates is tagged ``ampd:managed=true`` and ``ampd:stack=<name>``;
IAM policies are scoped to the workspace ARN (and to the one state parameter or object,
when ampd reads its state from SSM or S3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ampd.core import Kind, ResourceKey
from ampd.plan.aws import (
    UNKNOWN_ID,
    Desired,
    DesiredSet,
    ampd_tags,
    workspace_key,
)
from ampd.spec.models import StateSpec

REMOTE_WRITE_MANAGED = "arn:aws:iam::aws:policy/AmazonPrometheusRemoteWriteAccess"
QUERY_MANAGED = "arn:aws:iam::aws:policy/AmazonPrometheusQueryAccess"
WRITER_INLINE = "ampd-remote-write"
READER_INLINE = "ampd-query"
READER_ACTIONS = ("aps:GetLabels", "aps:GetMetricMetadata", "aps:GetSeries", "aps:QueryMetrics")


def client_token(stack: str, alias: str, region: str, account: str, replaces: str = "") -> str:
    """Deterministic: every host of a fleet computes the same token for the same workspace.

    ``replaces`` is the id of a workspace deleted outside ampd, so that recreating it does
    not replay the old creation.
    """
    raw = "\x1f".join(("ampd", stack, alias, region, account, replaces))
    return "ampd-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def workspace_arn(region: str, account: str, workspace_id: str | None) -> str:
    return f"arn:aws:aps:{region}:{account}:workspace/{workspace_id or UNKNOWN_ID}"


def _scoped_policy(sid: str, actions: list[str], ws_arn: str) -> dict[str, Any]:
    """An inline policy allowing ``actions`` on this workspace only."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": ws_arn}],
    }


def state_read_statement(location: str, ws_arn: str) -> dict[str, Any]:
    """Read access to exactly the state document at ``location`` (``ssm:NAME`` or
    ``s3://BUCKET/KEY``), in the workspace's partition, region and account."""
    parts = ws_arn.split(":")
    partition, region, account = parts[1], parts[3], parts[4]
    if location.startswith("ssm:"):
        name = location[4:]
        resource = f"arn:{partition}:ssm:{region}:{account}:parameter/{name.lstrip('/')}"
        actions = ["ssm:GetParameter", "ssm:GetParameters"]
    else:
        resource = f"arn:{partition}:s3:::{location.removeprefix('s3://')}"
        actions = ["s3:GetObject"]
    return {"Sid": "AmpdReadState", "Effect": "Allow", "Action": actions, "Resource": resource}


def writer_policy(ws_arn: str, state_location: str | None = None) -> dict[str, Any]:
    doc = _scoped_policy("AmpdRemoteWrite", ["aps:RemoteWrite"], ws_arn)
    if state_location is not None:
        doc["Statement"].append(state_read_statement(state_location, ws_arn))
    return doc


def reader_policy(ws_arn: str) -> dict[str, Any]:
    return _scoped_policy("AmpdQuery", list(READER_ACTIONS), ws_arn)


def _trust(principal: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": dict(principal), "Action": "sts:AssumeRole"}
        ],
    }


def _data_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


# -- desired state ------------------------------------------------------------------------


def desired_workspace(spec: StateSpec) -> Desired | None:
    ws = spec.workspace
    if ws is None:
        return None
    fields: dict[str, Any] = {"tags": {**ws.tags, **ampd_tags(spec.stack)}}
    if ws.alias is not None:
        fields["alias"] = ws.alias
    immutable: frozenset[str] = frozenset()
    if ws.kms_key_arn is not None:
        fields["kms_key_arn"] = ws.kms_key_arn
        immutable = frozenset({"kms_key_arn"})
    return Desired(workspace_key(spec), fields, immutable=immutable)


def desired_workspace_children(spec: StateSpec, files: Mapping[str, bytes | None]) -> DesiredSet:
    """Configuration, logging, rule groups and alert manager definition.

    ``files`` holds the bytes of every rule/alertmanager file the spec names (None when
    missing): reading them is the caller's business, this module stays pure.
    """
    ws = spec.workspace
    if ws is None:
        return DesiredSet()
    stack = spec.stack
    out: list[Desired] = []
    errors: dict[ResourceKey, str] = {}
    if ws.retention_days is not None:
        out.append(
            Desired(
                ResourceKey(Kind.WORKSPACE_CONFIGURATION, stack),
                {"retention_days": ws.retention_days},
            )
        )
    if ws.logging is not None:
        key = ResourceKey(Kind.LOGGING, stack)
        if ws.logging.log_group_arn is not None:
            out.append(Desired(key, {"log_group_arn": ws.logging.log_group_arn}))
        else:
            out.append(Desired(key, present=False))
    for group in ws.rule_groups:
        key = ResourceKey(Kind.RULE_GROUP, group.name)
        raw = files.get(group.file)
        if raw is None:
            errors[key] = f"rule file {group.file} cannot be read"
            continue
        out.append(Desired(key, {"data": _data_text(raw), "tags": ampd_tags(stack)}))
    if ws.alertmanager is not None:
        key = ResourceKey(Kind.ALERTMANAGER, stack)
        raw = files.get(ws.alertmanager.file)
        if raw is None:
            errors[key] = f"alertmanager file {ws.alertmanager.file} cannot be read"
        else:
            out.append(Desired(key, {"data": _data_text(raw)}))
    return DesiredSet(tuple(out), errors)


def _role_with_policies(
    role: str,
    role_fields: dict[str, Any],
    inline_name: str,
    managed_name: str,
    *,
    scoped: bool,
    document: Any,
    managed: bool,
    note: str,
) -> list[Desired]:
    """A role and its permissions: our inline policy scoped to the workspace, or the AWS
    managed policy attached, and the other one absent."""
    out = [Desired(ResourceKey(Kind.IAM_ROLE, role), role_fields, managed=managed, note=note)]
    inline = ResourceKey(Kind.IAM_POLICY, f"{role}/{inline_name}")
    attached = ResourceKey(Kind.IAM_POLICY, f"{role}/{managed_name}")
    if scoped:
        return [
            *out,
            Desired(inline, {"document": document}, managed=managed, note=note),
            Desired(attached, present=False, managed=managed, note=note),
        ]
    return [
        *out,
        Desired(attached, {"attached": True}, managed=managed, note=note),
        Desired(inline, present=False, managed=managed, note=note),
    ]


def desired_iam(spec: StateSpec, *, account: str, ws_arn: str) -> DesiredSet:
    iam = spec.iam
    if iam is None:
        return DesiredSet()
    tags = ampd_tags(spec.stack)
    out: list[Desired] = []
    writer_name = iam.writer.role_name if iam.writer is not None else "ampd-writer"
    if iam.writer is not None:
        w = iam.writer
        managed = w.manage
        note = "" if managed else "iam.writer.manage is false"
        out += _role_with_policies(
            w.role_name,
            {"trust": _trust({"Service": "ec2.amazonaws.com"}), "tags": tags},
            WRITER_INLINE,
            REMOTE_WRITE_MANAGED,
            scoped=w.policy == "scoped",
            document=writer_policy(ws_arn, spec.state_source.location),
            managed=managed,
            note=note,
        )
        if w.instance_profile is not None:
            out.append(
                Desired(
                    ResourceKey(Kind.INSTANCE_PROFILE, w.instance_profile),
                    {"roles": [w.role_name], "tags": tags},
                    managed=managed,
                    note=note,
                )
            )
    if iam.reader is not None:
        r = iam.reader
        managed = r.manage
        note = "" if managed else "iam.reader.manage is false"
        principals = sorted(
            f"arn:aws:iam::{account}:role/{writer_name}" if t == "writer" else t for t in r.trusted
        )
        trust = _trust({"AWS": principals} if principals else {"Service": "ec2.amazonaws.com"})
        out += _role_with_policies(
            r.role_name,
            {"trust": trust, "tags": tags},
            READER_INLINE,
            QUERY_MANAGED,
            scoped=r.policy == "scoped",
            document=reader_policy(ws_arn),
            managed=managed,
            note=note,
        )
    return DesiredSet(tuple(out))
