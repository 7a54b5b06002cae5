"""What ampd reads from AWS's answers, as data: the contract its reads are held to.

Real AWS cannot be reached from the tests, so the only machine-readable description of its
answers is botocore's service models. ``tests/aws/test_aws_model_reads.py`` holds this table to
them: every path in ``READS`` must exist in that operation's output shape, every value in
``COMPARED`` must be in that member's enum, and every code in ``ERROR_CODES`` must be one
that an operation ampd calls can send (or one every AWS endpoint can send). The same test
scans the AWS gateway (every module of ``ampd/aws/gateway/`` but this table: the reader,
the writer and their call path) and ``ampd/aws/observe.py`` for the keys they read from
answers: the gateways' reads must stay within this table, so a new read without an entry
here fails the test.

Paths use botocore's parsed member names (``Role.Arn``, not the XML element); ``[]`` steps
into a list's items, a path that stops at a map or a structure reads it whole. Lists are
read through botocore's paginators, so their page tokens (``nextToken``, ``Marker``,
``IsTruncated``) are botocore's reads, not ampd's. Pure data: no boto3, no botocore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["COMPARED", "ERROR_CODES", "READS"]

# An AMP configuration's status, and AMP's reason when it failed.
_STATUS = ("status.statusCode", "status.statusReason")


def _under(prefix: str, *paths: str) -> tuple[str, ...]:
    return (prefix, *(f"{prefix}.{p}" for p in paths))


# What observe.aws.workspace_live and find_workspace read from a workspace, described or
# listed alike (a summary has no prometheusEndpoint: the endpoint is derived).
_WORKSPACE = ("workspaceId", "arn", "alias", "tags", "kmsKeyArn", "createdAt", "status.statusCode")

# operation (as botocore's model names it) -> response paths ampd reads
READS: Final[Mapping[str, tuple[str, ...]]] = {
    # -- AMP ---------------------------------------------------------------------------
    "ListWorkspaces": _under("workspaces[]", *_WORKSPACE),
    "DescribeWorkspace": _under("workspace", *_WORKSPACE),
    # act.aws.create_workspace: the id, and the answer itself when a describe finds nothing
    "CreateWorkspace": ("workspaceId", "arn", "tags", "kmsKeyArn", "status.statusCode"),
    "UpdateWorkspaceAlias": (),
    "DeleteWorkspace": (),
    "TagResource": (),
    "UntagResource": (),
    "DescribeWorkspaceConfiguration": _under(
        "workspaceConfiguration",
        "retentionPeriodInDays",
        "outOfOrderTimeWindowInSeconds",
        "ruleQueryOffsetInSeconds",
        "limitsPerLabelSet[].labelSet",
        "limitsPerLabelSet[].limits.maxSeries",
        *_STATUS,
    ),
    "UpdateWorkspaceConfiguration": (),
    "DescribeLoggingConfiguration": _under("loggingConfiguration", "logGroupArn", *_STATUS),
    "CreateLoggingConfiguration": (),
    "UpdateLoggingConfiguration": (),
    "DeleteLoggingConfiguration": (),
    "DescribeQueryLoggingConfiguration": _under(
        "queryLoggingConfiguration",
        "destinations[].cloudWatchLogs.logGroupArn",
        "destinations[].filters.qspThreshold",
        *_STATUS,
    ),
    "CreateQueryLoggingConfiguration": (),
    "UpdateQueryLoggingConfiguration": (),
    "DeleteQueryLoggingConfiguration": (),
    "DescribeResourcePolicy": ("policyDocument", "policyStatus", "revisionId"),
    "PutResourcePolicy": (),
    "DeleteResourcePolicy": (),
    "DescribeAlertManagerDefinition": _under("alertManagerDefinition", "data", *_STATUS),
    "CreateAlertManagerDefinition": (),
    "PutAlertManagerDefinition": (),
    "DeleteAlertManagerDefinition": (),
    "ListRuleGroupsNamespaces": _under("ruleGroupsNamespaces[]", "name", "tags"),
    "DescribeRuleGroupsNamespace": _under(
        "ruleGroupsNamespace", "name", "arn", "data", "tags", *_STATUS
    ),
    "CreateRuleGroupsNamespace": (),
    "PutRuleGroupsNamespace": (),
    "DeleteRuleGroupsNamespace": (),
    # -- IAM ---------------------------------------------------------------------------
    "GetRole": _under(
        "Role",
        "Arn",
        "AssumeRolePolicyDocument",
        "PermissionsBoundary.PermissionsBoundaryArn",
        "Tags[].Key",
        "Tags[].Value",
    ),
    "CreateRole": ("Role.Arn",),
    "PutRolePermissionsBoundary": (),
    "UpdateAssumeRolePolicy": (),
    "TagRole": (),
    "UntagRole": (),
    "DeleteRole": (),
    "ListInstanceProfilesForRole": ("InstanceProfiles[].InstanceProfileName",),
    "GetRolePolicy": ("PolicyDocument",),
    "ListRolePolicies": ("PolicyNames",),
    "PutRolePolicy": (),
    "DeleteRolePolicy": (),
    "ListAttachedRolePolicies": ("AttachedPolicies[].PolicyArn",),
    "AttachRolePolicy": (),
    "DetachRolePolicy": (),
    "SimulatePrincipalPolicy": (
        "EvaluationResults[].EvalActionName",
        "EvaluationResults[].EvalDecision",
        "EvaluationResults[].ResourceSpecificResults[].EvalResourceDecision",
    ),
    "GetInstanceProfile": _under(
        "InstanceProfile",
        "Arn",
        "Roles[].RoleName",
        "Tags[].Key",
        "Tags[].Value",
    ),
    "CreateInstanceProfile": (),
    "TagInstanceProfile": (),
    "AddRoleToInstanceProfile": (),
    "RemoveRoleFromInstanceProfile": (),
    "DeleteInstanceProfile": (),
    # -- STS ---------------------------------------------------------------------------
    "GetCallerIdentity": ("Account", "Arn"),
}

# The AMP status values ampd compares (plan.aws TRANSITIONAL and FAILED, "ACTIVE" in the
# report, observe.aws's DELETING), per "Operation:path": each path lists the ones its
# member can take. A workspace has no UPDATE_FAILED; a workspace configuration is never
# CREATING, DELETING or CREATION_FAILED.
_AMP_ALL = frozenset(
    {"ACTIVE", "CREATING", "UPDATING", "DELETING", "CREATION_FAILED", "UPDATE_FAILED"}
)
_WORKSPACE_STATUS = _AMP_ALL - {"UPDATE_FAILED"}
_DECISIONS = frozenset({"allowed", "explicitDeny", "implicitDeny"})

COMPARED: Final[Mapping[str, frozenset[str]]] = {
    "ListWorkspaces:workspaces[].status.statusCode": _WORKSPACE_STATUS,
    "DescribeWorkspace:workspace.status.statusCode": _WORKSPACE_STATUS,
    "CreateWorkspace:status.statusCode": _WORKSPACE_STATUS,
    "DescribeWorkspaceConfiguration:workspaceConfiguration.status.statusCode": frozenset(
        {"ACTIVE", "UPDATING", "UPDATE_FAILED"}
    ),
    "DescribeLoggingConfiguration:loggingConfiguration.status.statusCode": _AMP_ALL,
    "DescribeQueryLoggingConfiguration:queryLoggingConfiguration.status.statusCode": _AMP_ALL,
    # a resource policy never fails: it is only ever in transit or ACTIVE
    "DescribeResourcePolicy:policyStatus": frozenset(
        {"ACTIVE", "CREATING", "UPDATING", "DELETING"}
    ),
    "DescribeAlertManagerDefinition:alertManagerDefinition.status.statusCode": _AMP_ALL,
    "DescribeRuleGroupsNamespace:ruleGroupsNamespace.status.statusCode": _AMP_ALL,
    "SimulatePrincipalPolicy:EvaluationResults[].EvalDecision": _DECISIONS,
    "SimulatePrincipalPolicy:EvaluationResults[].ResourceSpecificResults[].EvalResourceDecision": (
        _DECISIONS
    ),
}

# The error codes gateways.aws_base matches, per category (its _*_CODES sets and the codes
# it names inline). Only codes that the operations ampd calls can send, or that every AWS
# endpoint can send, belong here.
ERROR_CODES: Final[Mapping[str, frozenset[str]]] = {
    "throttling": frozenset({"Throttling", "ThrottlingException"}),
    "denied": frozenset({"AccessDenied", "AccessDeniedException"}),
    "not_found": frozenset({"ResourceNotFoundException", "NoSuchEntity"}),
    "expired": frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"}),
    "credentials": frozenset(
        {
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
            "InvalidSignatureException",
        }
    ),
    "server": frozenset({"InternalServerException", "ServiceUnavailable", "ServiceFailure"}),
    "concurrent": frozenset({"ConcurrentModification"}),
    "exists": frozenset({"EntityAlreadyExists"}),
    "conflict": frozenset({"ConflictException"}),
}
