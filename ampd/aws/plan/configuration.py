"""The desired fields of what AMP holds for the workspace besides its files: the
workspace configuration, the query logging configuration and the resource policy. Pure;
read by the desired state and by the IAM policies (which actions a state needs)."""

from __future__ import annotations

from typing import Any

from ampd.errors import PermanentError
from ampd.spec.models import StateSpec
from ampd.spec.types import duration_seconds

__all__ = [
    "configuration_fields",
    "label_set_limits",
    "query_logging_fields",
    "resource_policy_document",
]

REMOTE_WRITE = "aps:RemoteWrite"


def configuration_fields(spec: StateSpec) -> dict[str, Any]:
    """The workspace configuration's fields the state file sets, and only those: AMP
    keeps its own value (or default) of every other one. ``label_set_limits: []`` set
    on purpose removes every limit; left out, AMP's are not looked at."""
    ws = spec.workspace
    if ws is None:
        return {}
    out: dict[str, Any] = {}
    if ws.retention_days is not None:
        out["retention_days"] = ws.retention_days
    if ws.out_of_order_window is not None:
        out["out_of_order_seconds"] = int(duration_seconds(ws.out_of_order_window))
    if ws.rule_query_offset is not None:
        out["rule_query_offset_seconds"] = int(duration_seconds(ws.rule_query_offset))
    if "label_set_limits" in ws.model_fields_set:
        out["label_set_limits"] = label_set_limits(spec)
    return out


def label_set_limits(spec: StateSpec) -> list[dict[str, Any]]:
    """The limits as AMP takes them: a derived label set is the stack's own external
    labels of those names, with this state's values. A name the stack does not put on
    what it ships is an error (PermanentError: nothing is sent until the state changes),
    never a set made up."""
    ws = spec.workspace
    if ws is None:
        return []
    shipped = spec.prometheus.external_labels if spec.prometheus is not None else {}
    out: list[dict[str, Any]] = []
    for i, limit in enumerate(ws.label_set_limits):
        if limit.labels is not None:
            labels = dict(limit.labels)
        else:
            names = limit.derive or []
            missing = [n for n in names if n not in shipped]
            if missing:
                raise PermanentError(
                    f"workspace.label_set_limits[{i}].derive: {', '.join(missing)} is not in "
                    "prometheus.external_labels: no label set to derive"
                )
            labels = {n: shipped[n] for n in names}
        if any(o["labels"] == labels for o in out):
            raise PermanentError(
                f"workspace.label_set_limits[{i}]: derives {labels}, a label set listed "
                "before it (AMP takes each label set once)"
            )
        out.append({"labels": labels, "max_series": limit.max_series})
    return out


def query_logging_fields(spec: StateSpec) -> dict[str, Any]:
    ws = spec.workspace
    if ws is None or ws.query_logging is None:
        return {}
    q = ws.query_logging
    return {"log_group_arn": q.log_group_arn, "qsp_threshold": q.qsp_threshold}


def resource_policy_document(spec: StateSpec, ws_arn: str) -> dict[str, Any] | None:
    """The workspace's resource policy: the writers may ``aps:RemoteWrite`` into it and
    nothing else. Accounts are principals (as IAM stores them: their root ARN);
    organization paths are the ``aws:PrincipalOrgPaths`` condition (that unit and every
    unit beneath it)."""
    ws = spec.workspace
    if ws is None or ws.resource_policy is None:
        return None
    part = ws_arn.split(":")[1]  # the workspace's partition: aws, aws-cn, aws-us-gov...
    accounts = sorted(w for w in ws.resource_policy.writers if "/" not in w)
    paths = sorted(w for w in ws.resource_policy.writers if "/" in w)
    statements: list[dict[str, Any]] = []
    if accounts:
        statements.append(
            {
                "Sid": "AmpdRemoteWriteAccounts",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:{part}:iam::{a}:root" for a in accounts]},
                "Action": REMOTE_WRITE,
                "Resource": ws_arn,
            }
        )
    if paths:
        statements.append(
            {
                "Sid": "AmpdRemoteWriteOrganizationPaths",
                "Effect": "Allow",
                "Principal": "*",
                "Action": REMOTE_WRITE,
                "Resource": ws_arn,
                "Condition": {
                    "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [f"{p}*" for p in paths]}
                },
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
