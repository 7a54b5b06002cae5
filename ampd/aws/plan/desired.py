"""The desired AWS state, from the spec: the workspace, its children, IAM. Pure.

Every resource ampd creates is tagged ``ampd:managed=true`` and ``ampd:stack=<name>``;
IAM policies are scoped to the workspace ARN (and to the state parameter or object, with
the files beside it, when ampd reads its state from SSM or S3). ARNs take their partition
from the region (``aws``, ``aws-cn``, ``aws-us-gov``). Every role ampd creates carries the
stack's permissions boundary, and a reader role trusts principals of this account only,
unless ``iam.reader.trusted_accounts`` lists theirs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from ampd.aws.model import UNKNOWN_ID, Desired, DesiredSet, ampd_tags, workspace_key
from ampd.aws.plan.arns import (
    QUERY_ACTIONS,
    QUERY_MANAGED_NAME,
    READER_INLINE,
    REMOTE_WRITE_MANAGED_NAME,
    WRITER_INLINE,
    Arns,
    partition,
    reader_policy,
    state_files_statement,
    state_read_statement,
    writer_policy,
)
from ampd.aws.plan.configuration import (
    configuration_fields,
    query_logging_fields,
    resource_policy_document,
)
from ampd.aws.plan.policy import boundary_arn
from ampd.core import Kind, ResourceKey
from ampd.spec.models import StateSpec

__all__ = [
    "READER_ACTIONS",
    "READER_INLINE",
    "WRITER_INLINE",
    "client_token",
    "configuration_fields",
    "desired_iam",
    "desired_workspace",
    "desired_workspace_children",
    "reader_policy",
    "state_files_statement",
    "state_read_statement",
    "workspace_arn",
    "writer_policy",
]

READER_ACTIONS = QUERY_ACTIONS


def client_token(stack: str, alias: str, region: str, account: str, replaces: str = "") -> str:
    """Deterministic: every host of a fleet computes the same token for the same workspace.

    ``replaces`` is the id of a workspace deleted outside ampd, so that recreating it does
    not replay the old creation.
    """
    raw = "\x1f".join(("ampd", stack, alias, region, account, replaces))
    return "ampd-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def workspace_arn(region: str, account: str, workspace_id: str | None) -> str:
    """The workspace's ARN, in the region's partition; a placeholder id until it exists."""
    return f"arn:{partition(region)}:aps:{region}:{account}:workspace/{workspace_id or UNKNOWN_ID}"


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


def desired_workspace_children(
    spec: StateSpec, files: Mapping[str, bytes | None], ws_arn: str
) -> DesiredSet:
    """Configuration, logging, query logging, resource policy, rule groups and alert
    manager definition (``ws_arn``: the workspace the resource policy is about).

    ``files`` holds the bytes of every rule/alertmanager file the spec names (None when
    missing): reading them is the caller's business, this module stays pure.
    """
    ws = spec.workspace
    if ws is None:
        return DesiredSet()
    stack = spec.stack
    out: list[Desired] = []
    errors: dict[ResourceKey, str] = {}
    configuration = configuration_fields(spec)
    if configuration:
        out.append(Desired(ResourceKey(Kind.WORKSPACE_CONFIGURATION, stack), configuration))
    if ws.logging is not None:
        key = ResourceKey(Kind.LOGGING, stack)
        if ws.logging.log_group_arn is not None:
            out.append(Desired(key, {"log_group_arn": ws.logging.log_group_arn}))
        else:
            out.append(Desired(key, present=False))
    query_logging = query_logging_fields(spec)
    if query_logging:
        out.append(Desired(ResourceKey(Kind.QUERY_LOGGING, stack), query_logging))
    document = resource_policy_document(spec, ws_arn)
    if document is not None:
        out.append(Desired(ResourceKey(Kind.RESOURCE_POLICY, stack), {"document": document}))
    for group in ws.rule_groups:
        key = ResourceKey(Kind.RULE_GROUP, group.name)
        raw = _data_of(group.file, group.content, files)
        if raw is None:
            errors[key] = f"rule file {group.file} cannot be read"
            continue
        out.append(Desired(key, {"data": _data_text(raw), "tags": ampd_tags(stack)}))
    if ws.alertmanager is not None:
        key = ResourceKey(Kind.ALERTMANAGER, stack)
        am = ws.alertmanager
        raw = _data_of(am.file, am.content, files)
        if raw is None:
            errors[key] = f"alertmanager file {am.file} cannot be read"
        else:
            out.append(Desired(key, {"data": _data_text(raw)}))
    return DesiredSet(tuple(out), errors)


def _data_of(
    file: str | None, content: str | None, files: Mapping[str, bytes | None]
) -> bytes | None:
    """What AMP gets: the YAML written in the state, else the named file's bytes (None:
    that file could not be read)."""
    if content is not None:
        return content.encode()
    return files.get(file) if file is not None else None


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
    refused: str = "",
) -> list[Desired]:
    """A role and its permissions: our inline policy scoped to the workspace, or the AWS
    managed policy attached, and the other one absent."""
    common: dict[str, Any] = {"managed": managed, "note": note, "refused": refused}
    out = [Desired(ResourceKey(Kind.IAM_ROLE, role), role_fields, **common)]
    inline = ResourceKey(Kind.IAM_POLICY, f"{role}/{inline_name}")
    attached = ResourceKey(Kind.IAM_POLICY, f"{role}/{managed_name}")
    if scoped:
        return [
            *out,
            Desired(inline, {"document": document}, **common),
            Desired(attached, present=False, **common),
        ]
    return [
        *out,
        Desired(attached, {"attached": True}, **common),
        Desired(inline, present=False, **common),
    ]


def _arns(ws_arn: str, account: str) -> Arns:
    parts = ws_arn.split(":")
    if len(parts) >= 5 and parts[0] == "arn":
        return Arns(parts[1], parts[3], account)
    return Arns("aws", "", account)


def foreign_principals(
    trusted: list[str], account: str, trusted_accounts: list[str], part: str
) -> list[str]:
    """The trusted principals outside this account (and the listed ones) or partition."""
    out = []
    for arn in trusted:
        fields = arn.split(":")
        if fields[1] != part or (fields[4] != account and fields[4] not in trusted_accounts):
            out.append(arn)
    return out


def desired_iam(spec: StateSpec, *, account: str, ws_arn: str) -> DesiredSet:
    """``account`` is the caller's (STS, or the instance identity document)."""
    # Long on purpose: one entry per role and its parts, in the order AWS needs them.
    iam = spec.iam
    if iam is None:
        return DesiredSet()
    arns = _arns(ws_arn, account)
    tags = ampd_tags(spec.stack)
    boundary = boundary_arn(spec, arns)
    out: list[Desired] = []
    writer_name = iam.writer.role_name if iam.writer is not None else "ampd-writer"
    if iam.writer is not None:
        w = iam.writer
        managed = w.manage
        note = "" if managed else "iam.writer.manage is false"
        fields: dict[str, Any] = {"trust": _trust({"Service": "ec2.amazonaws.com"}), "tags": tags}
        if managed:
            fields["boundary"] = boundary
        out += _role_with_policies(
            w.role_name,
            fields,
            WRITER_INLINE,
            arns.aws_managed_policy(REMOTE_WRITE_MANAGED_NAME),
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
        named = [t for t in r.trusted if t != "writer"]
        writer_arn = [arns.role(writer_name)] if "writer" in r.trusted else []
        principals = sorted(writer_arn + named)
        foreign = foreign_principals(named, account, r.trusted_accounts, arns.partition)
        refused = ""
        if foreign and managed:
            refused = (
                f"trusts {', '.join(foreign)}, outside this account ({account}); list the "
                "account in iam.reader.trusted_accounts to allow it"
            )
        trust = _trust({"AWS": principals} if principals else {"Service": "ec2.amazonaws.com"})
        fields = {"trust": trust, "tags": tags}
        if managed:
            fields["boundary"] = boundary
        out += _role_with_policies(
            r.role_name,
            fields,
            READER_INLINE,
            arns.aws_managed_policy(QUERY_MANAGED_NAME),
            scoped=r.policy == "scoped",
            document=reader_policy(ws_arn),
            managed=managed,
            note=note,
            refused=refused,
        )
    return DesiredSet(tuple(out))
