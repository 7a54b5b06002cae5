"""The one AWS gateway: boto3 ``amp``, ``iam`` and ``sts`` clients, and nothing else.

Every call goes through ``AwsBase._call`` (``ampd.aws.gateway.base``), which counts it and
turns botocore's exceptions into ampd's error tree. AMP's API is here, IAM's in
``ampd.aws.gateway.iam``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ampd.aws.gateway.base import (
    AccessDenied,
    AlreadyExists,
    AwsUnreachable,
    CredentialsRejected,
    Identity,
    ResourceGone,
    api_call_counts,
    reset_api_call_counts,
)
from ampd.aws.gateway.iam import IamApi

__all__ = [
    "AccessDenied",
    "AlreadyExists",
    "AwsGateway",
    "AwsUnreachable",
    "CredentialsRejected",
    "Identity",
    "ResourceGone",
    "api_call_counts",
    "make_gateway",
    "reset_api_call_counts",
]


class AwsGateway(IamApi):
    """Typed access to the AMP, IAM and STS APIs of one region."""

    # -- AMP workspaces ---------------------------------------------------------------------

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

    def create_workspace(
        self, alias: str | None, tags: Mapping[str, str], client_token: str, kms_key_arn: str | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"clientToken": client_token, "tags": dict(tags)}
        if alias:
            kwargs["alias"] = alias
        if kms_key_arn:
            kwargs["kmsKeyArn"] = kms_key_arn
        r = self._call("amp", "CreateWorkspace", lambda: self._amp.create_workspace(**kwargs))
        return {k: v for k, v in r.items() if k != "ResponseMetadata"}

    def update_workspace_alias(self, workspace_id: str, alias: str) -> None:
        self._call(
            "amp",
            "UpdateWorkspaceAlias",
            lambda: self._amp.update_workspace_alias(workspaceId=workspace_id, alias=alias),
        )

    def delete_workspace(self, workspace_id: str) -> None:
        self._delete(
            "amp", "DeleteWorkspace", lambda: self._amp.delete_workspace(workspaceId=workspace_id)
        )

    def tag_resource(self, arn: str, tags: Mapping[str, str]) -> None:
        self._call(
            "amp", "TagResource", lambda: self._amp.tag_resource(resourceArn=arn, tags=dict(tags))
        )

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        self._call(
            "amp",
            "UntagResource",
            lambda: self._amp.untag_resource(resourceArn=arn, tagKeys=keys),
        )

    # -- AMP workspace configuration, logging, alert manager --------------------------------

    def describe_workspace_configuration(self, workspace_id: str) -> dict[str, Any] | None:
        r = self._get(
            "amp",
            "DescribeWorkspaceConfiguration",
            lambda: self._amp.describe_workspace_configuration(workspaceId=workspace_id),
        )
        return dict(r["workspaceConfiguration"]) if r is not None else None

    def update_workspace_configuration(self, workspace_id: str, retention_days: int) -> None:
        self._call(
            "amp",
            "UpdateWorkspaceConfiguration",
            lambda: self._amp.update_workspace_configuration(
                workspaceId=workspace_id, retentionPeriodInDays=retention_days
            ),
        )

    def describe_logging(self, workspace_id: str) -> dict[str, Any] | None:
        """The logging configuration (``logGroupArn``, ``status`` with ``statusCode`` and,
        when it failed, ``statusReason``), or None when the workspace has none."""
        r = self._get(
            "amp",
            "DescribeLoggingConfiguration",
            lambda: self._amp.describe_logging_configuration(workspaceId=workspace_id),
        )
        return dict(r["loggingConfiguration"]) if r is not None else None

    def create_logging(self, workspace_id: str, log_group_arn: str) -> None:
        self._call(
            "amp",
            "CreateLoggingConfiguration",
            lambda: self._amp.create_logging_configuration(
                workspaceId=workspace_id, logGroupArn=log_group_arn
            ),
        )

    def update_logging(self, workspace_id: str, log_group_arn: str) -> None:
        self._call(
            "amp",
            "UpdateLoggingConfiguration",
            lambda: self._amp.update_logging_configuration(
                workspaceId=workspace_id, logGroupArn=log_group_arn
            ),
        )

    def delete_logging(self, workspace_id: str) -> None:
        self._delete(
            "amp",
            "DeleteLoggingConfiguration",
            lambda: self._amp.delete_logging_configuration(workspaceId=workspace_id),
        )

    def describe_alertmanager(self, workspace_id: str) -> dict[str, Any] | None:
        """The definition (``data`` as bytes, ``status`` with ``statusCode`` and, when it
        failed, ``statusReason``), or None when the workspace has none."""
        r = self._get(
            "amp",
            "DescribeAlertManagerDefinition",
            lambda: self._amp.describe_alert_manager_definition(workspaceId=workspace_id),
        )
        return dict(r["alertManagerDefinition"]) if r is not None else None

    def create_alertmanager(self, workspace_id: str, data: bytes) -> None:
        self._call(
            "amp",
            "CreateAlertManagerDefinition",
            lambda: self._amp.create_alert_manager_definition(workspaceId=workspace_id, data=data),
        )

    def put_alertmanager(self, workspace_id: str, data: bytes) -> None:
        self._call(
            "amp",
            "PutAlertManagerDefinition",
            lambda: self._amp.put_alert_manager_definition(workspaceId=workspace_id, data=data),
        )

    def delete_alertmanager(self, workspace_id: str) -> None:
        self._delete(
            "amp",
            "DeleteAlertManagerDefinition",
            lambda: self._amp.delete_alert_manager_definition(workspaceId=workspace_id),
        )

    # -- AMP rule groups namespaces -----------------------------------------------------

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

    def create_rule_group(
        self, workspace_id: str, name: str, data: bytes, tags: Mapping[str, str]
    ) -> None:
        self._call(
            "amp",
            "CreateRuleGroupsNamespace",
            lambda: self._amp.create_rule_groups_namespace(
                workspaceId=workspace_id, name=name, data=data, tags=dict(tags)
            ),
        )

    def put_rule_group(self, workspace_id: str, name: str, data: bytes) -> None:
        self._call(
            "amp",
            "PutRuleGroupsNamespace",
            lambda: self._amp.put_rule_groups_namespace(
                workspaceId=workspace_id, name=name, data=data
            ),
        )

    def delete_rule_group(self, workspace_id: str, name: str) -> None:
        self._delete(
            "amp",
            "DeleteRuleGroupsNamespace",
            lambda: self._amp.delete_rule_groups_namespace(workspaceId=workspace_id, name=name),
        )


def configured_region() -> str | None:
    """The region botocore's own chain would use (AWS_REGION, AWS_DEFAULT_REGION, config)."""
    import boto3  # noqa: PLC0415 (lazy: see AwsBase.__init__)

    return boto3.session.Session().region_name or os.environ.get("AWS_REGION") or None


def make_gateway(region: str, endpoint_url: str | None = None) -> AwsGateway:
    """A gateway for ``region``; ``endpoint_url`` overrides the AMP control plane only
    (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_AMP`` etc. are honoured by botocore)."""
    return AwsGateway(region, endpoint_url=endpoint_url)
