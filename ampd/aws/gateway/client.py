"""The AWS gateway's reader: boto3 ``amp``, ``iam`` and ``sts`` clients, read calls only.

Every call goes through ``AwsBase._call`` (``ampd.aws.gateway.base``), which counts it and
turns botocore's exceptions into ampd's error tree. AMP's reads are here, IAM's in
``ampd.aws.gateway.iam``; the writes are an ``AwsWriter``'s (``ampd.aws.gateway.writer``).
"""

from __future__ import annotations

import os
from typing import Any

from ampd.aws.gateway.base import (
    AccessDenied,
    AlreadyExists,
    AwsUnreachable,
    ConcurrentEdit,
    CredentialsRejected,
    Identity,
    ResourceGone,
    api_call_counts,
    reset_api_call_counts,
)
from ampd.aws.gateway.iam import IamReads

__all__ = [
    "AccessDenied",
    "AlreadyExists",
    "AwsReader",
    "AwsUnreachable",
    "ConcurrentEdit",
    "CredentialsRejected",
    "Identity",
    "ResourceGone",
    "api_call_counts",
    "make_gateway",
    "reset_api_call_counts",
]


class AwsReader(IamReads):
    """Typed reads of the AMP, IAM and STS APIs of one region: every describe, list, get,
    simulate and identity call, and no write. Its writer (the same clients) comes only
    from an :class:`~ampd.aws.gateway.writer.AwsWriting`."""

    def list_workspaces(self, alias: str | None = None) -> list[dict[str, Any]]:
        """Summaries (``workspaceId``, ``arn``, ``alias``, ``status``, ``tags``...): a
        summary has no ``prometheusEndpoint``, only ``describe_workspace`` has it."""
        kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": 100}}
        if alias:
            kwargs["alias"] = alias
        pages = self._amp.get_paginator("list_workspaces").paginate(**kwargs)
        return [
            dict(w)
            for page in self._pages("amp", "ListWorkspaces", pages)
            for w in page.get("workspaces", [])
        ]

    def describe_workspace(self, workspace_id: str) -> dict[str, Any] | None:
        r = self._get(
            "amp",
            "DescribeWorkspace",
            lambda: self._amp.describe_workspace(workspaceId=workspace_id),
        )
        return dict(r["workspace"]) if r is not None else None

    def describe_workspace_configuration(self, workspace_id: str) -> dict[str, Any] | None:
        r = self._get(
            "amp",
            "DescribeWorkspaceConfiguration",
            lambda: self._amp.describe_workspace_configuration(workspaceId=workspace_id),
        )
        return dict(r["workspaceConfiguration"]) if r is not None else None

    def describe_logging(self, workspace_id: str) -> dict[str, Any] | None:
        """The logging configuration (``logGroupArn``, ``status`` with ``statusCode`` and,
        when it failed, ``statusReason``), or None when the workspace has none."""
        r = self._get(
            "amp",
            "DescribeLoggingConfiguration",
            lambda: self._amp.describe_logging_configuration(workspaceId=workspace_id),
        )
        return dict(r["loggingConfiguration"]) if r is not None else None

    def describe_query_logging(self, workspace_id: str) -> dict[str, Any] | None:
        """The query logging configuration (``destinations`` with the log group and the
        threshold, ``status``), or None when the workspace has none."""
        r = self._get(
            "amp",
            "DescribeQueryLoggingConfiguration",
            lambda: self._amp.describe_query_logging_configuration(workspaceId=workspace_id),
        )
        return dict(r["queryLoggingConfiguration"]) if r is not None else None

    def describe_resource_policy(self, workspace_id: str) -> dict[str, Any] | None:
        """The resource policy (``policyDocument`` as text, ``policyStatus``,
        ``revisionId``), or None when the workspace has none."""
        r = self._get(
            "amp",
            "DescribeResourcePolicy",
            lambda: self._amp.describe_resource_policy(workspaceId=workspace_id),
        )
        if r is None:
            return None
        return {k: r[k] for k in ("policyDocument", "policyStatus", "revisionId")}

    def describe_alertmanager(self, workspace_id: str) -> dict[str, Any] | None:
        """The definition (``data`` as bytes, ``status`` with ``statusCode`` and, when it
        failed, ``statusReason``), or None when the workspace has none."""
        r = self._get(
            "amp",
            "DescribeAlertManagerDefinition",
            lambda: self._amp.describe_alert_manager_definition(workspaceId=workspace_id),
        )
        return dict(r["alertManagerDefinition"]) if r is not None else None

    def list_rule_groups(self, workspace_id: str) -> list[dict[str, Any]]:
        """Summaries (name, arn, status, tags): no data."""
        pages = self._amp.get_paginator("list_rule_groups_namespaces").paginate(
            workspaceId=workspace_id, PaginationConfig={"PageSize": 100}
        )
        return [
            dict(n)
            for page in self._pages("amp", "ListRuleGroupsNamespaces", pages)
            for n in page.get("ruleGroupsNamespaces", [])
        ]

    def describe_rule_group(self, workspace_id: str, name: str) -> dict[str, Any] | None:
        """name, arn, status, tags and ``data`` (bytes)."""
        r = self._get(
            "amp",
            "DescribeRuleGroupsNamespace",
            lambda: self._amp.describe_rule_groups_namespace(workspaceId=workspace_id, name=name),
        )
        return dict(r["ruleGroupsNamespace"]) if r is not None else None


def configured_region() -> str | None:
    """The region botocore's own chain would use (AWS_REGION, AWS_DEFAULT_REGION, config)."""
    import boto3  # noqa: PLC0415 (lazy: see AwsBase.__init__)

    return boto3.session.Session().region_name or os.environ.get("AWS_REGION") or None


def make_gateway(region: str, endpoint_url: str | None = None) -> AwsReader:
    """A reader for ``region``; ``endpoint_url`` overrides the AMP control plane only
    (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_AMP`` etc. are honoured by botocore)."""
    return AwsReader(region, endpoint_url=endpoint_url)
