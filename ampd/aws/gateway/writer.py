"""The AWS gateway's writer: every create, update, put, delete, tag, untag, attach, detach,
add and remove call, over the clients of one reader's session.

Only an :class:`AwsWriting` makes writers (``AwsWriting().writer(reader)``): it is the
capability ``ampd.wiring.Writers`` carries, handed to the AWS side's apply and to nothing
that plans. AMP's writes are here, IAM's in ``ampd.aws.gateway.iam_writes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ampd.aws.gateway.base import AccessDenied, AlreadyExists, policy_json
from ampd.aws.gateway.client import AwsReader
from ampd.aws.gateway.iam_writes import IamWrites
from ampd.errors import PermanentError

__all__ = ["NO_POLICY", "AwsWriter", "AwsWriting", "LabelSetLimit"]

# PutResourcePolicy's revisionId for a workspace that has no policy: AMP refuses the put
# (ConflictException) when one was made meanwhile
NO_POLICY = "NO_POLICY"


@dataclass(frozen=True)
class LabelSetLimit:
    """One of ``UpdateWorkspaceConfiguration.limitsPerLabelSet``: ``max_series`` 0 limits
    nothing (AMP only meters the label set)."""

    labels: Mapping[str, str]
    max_series: int


class AwsWriter(IamWrites):
    """Typed writes of the AMP and IAM APIs, sharing ``reader``'s clients and call counts."""

    _reader: AwsReader  # a create that lost a race reads what is there

    def __init__(self, reader: AwsReader) -> None:
        super().__init__(reader.region, clients=reader.clients)
        self._reader = reader

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

    def update_workspace_configuration(
        self,
        workspace_id: str,
        *,
        retention_days: int | None = None,
        out_of_order_seconds: int | None = None,
        rule_query_offset_seconds: int | None = None,
        label_set_limits: Sequence[LabelSetLimit] | None = None,
    ) -> None:
        """Only the fields given are sent: AMP keeps every other one as it is. A list of
        label set limits replaces AMP's whole list."""
        kwargs: dict[str, Any] = {"workspaceId": workspace_id}
        if retention_days is not None:
            kwargs["retentionPeriodInDays"] = retention_days
        if out_of_order_seconds is not None:
            kwargs["outOfOrderTimeWindowInSeconds"] = out_of_order_seconds
        if rule_query_offset_seconds is not None:
            kwargs["ruleQueryOffsetInSeconds"] = rule_query_offset_seconds
        if label_set_limits is not None:
            kwargs["limitsPerLabelSet"] = [
                {"labelSet": dict(limit.labels), "limits": {"maxSeries": limit.max_series}}
                for limit in label_set_limits
            ]
        self._call(
            "amp",
            "UpdateWorkspaceConfiguration",
            lambda: self._amp.update_workspace_configuration(**kwargs),
        )

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

    def create_query_logging(self, workspace_id: str, log_group_arn: str, threshold: int) -> None:
        """A workspace holds one query logging configuration. When another writer made it
        first, AMP refuses this create: with a ConflictException (``AlreadyExists``, see
        ``ampd.aws.gateway.base``), or, as botocore's model has it (it names no conflict
        for this create), a ValidationException. Either way, one that is there now is
        ``AlreadyExists``: the next pass reads it and updates it if it differs."""
        try:
            self._call(
                "amp",
                "CreateQueryLoggingConfiguration",
                lambda: self._amp.create_query_logging_configuration(
                    workspaceId=workspace_id,
                    destinations=[
                        {
                            "cloudWatchLogs": {"logGroupArn": log_group_arn},
                            "filters": {"qspThreshold": threshold},
                        }
                    ],
                ),
            )
        except AccessDenied:
            raise
        except PermanentError as e:
            if self._reader.describe_query_logging(workspace_id) is None:
                raise  # truly refused: nothing is there
            raise AlreadyExists(f"{e} (a query logging configuration is there now)") from e

    def update_query_logging(self, workspace_id: str, log_group_arn: str, threshold: int) -> None:
        self._call(
            "amp",
            "UpdateQueryLoggingConfiguration",
            lambda: self._amp.update_query_logging_configuration(
                workspaceId=workspace_id,
                destinations=[
                    {
                        "cloudWatchLogs": {"logGroupArn": log_group_arn},
                        "filters": {"qspThreshold": threshold},
                    }
                ],
            ),
        )

    def delete_query_logging(self, workspace_id: str) -> None:
        self._delete(
            "amp",
            "DeleteQueryLoggingConfiguration",
            lambda: self._amp.delete_query_logging_configuration(workspaceId=workspace_id),
        )

    def put_resource_policy(
        self, workspace_id: str, document: Mapping[str, Any], revision_id: str | None
    ) -> None:
        """Always conditional on what was read: the ``revision_id`` read, or, when there
        was no policy to read (None), ``NO_POLICY``. AMP refuses it (ConflictException)
        when the policy was changed or made since: ``ConcurrentEdit``, nothing overwritten.
        (Without a revision AMP would write regardless: two writers that both read "no
        policy" would clobber each other.)"""
        kwargs: dict[str, Any] = {
            "workspaceId": workspace_id,
            "policyDocument": policy_json(document),
            "revisionId": revision_id if revision_id is not None else NO_POLICY,
        }
        self._call("amp", "PutResourcePolicy", lambda: self._amp.put_resource_policy(**kwargs))

    def delete_resource_policy(self, workspace_id: str, revision_id: str | None) -> None:
        kwargs: dict[str, Any] = {"workspaceId": workspace_id}
        if revision_id is not None:
            kwargs["revisionId"] = revision_id
        self._delete(
            "amp", "DeleteResourcePolicy", lambda: self._amp.delete_resource_policy(**kwargs)
        )

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


class AwsWriting:
    """The capability to write AWS: a writer for the session of a reader."""

    def writer(self, reader: AwsReader) -> AwsWriter:
        return AwsWriter(reader)
