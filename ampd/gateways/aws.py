"""The one AWS gateway: boto3 ``amp``, ``iam`` and ``sts`` clients, and nothing else.

Every call goes through :meth:`AwsGateway._call`, which

- counts it per ``(operation, code)`` (``api_call_counts()``, exported by the daemon as
  ``ampd_aws_api_calls_total``),
- turns botocore's exceptions into ampd's error tree:

      throttling, HTTP 429, 5xx, ConflictException   -> TemporaryError(delay)
      connection refused/reset/timed out             -> AwsUnreachable (a TemporaryError)
      AccessDenied                                   -> AccessDenied (a PermanentError that
                                                        names the action and the principal)
      validation, quota, anything else               -> PermanentError
      ResourceNotFoundException / NoSuchEntity       -> ``None`` from describe/get methods

botocore's own retries are off (one attempt): scheduling and backoff are decided by the
reconciler, in one place. Timeouts are short so a pass never hangs on AWS.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.exceptions
import structlog
from botocore.config import Config

from ampd.errors import PermanentError, TemporaryError

if TYPE_CHECKING:
    from mypy_boto3_amp.client import PrometheusServiceClient
    from mypy_boto3_iam.client import IAMClient
    from mypy_boto3_sts.client import STSClient

__all__ = [
    "AccessDenied",
    "AwsGateway",
    "AwsUnreachable",
    "Identity",
    "api_call_counts",
    "make_gateway",
    "reset_api_call_counts",
]

log = structlog.get_logger()

T = TypeVar("T")

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0

THROTTLE_DELAY = 2.0
SERVER_ERROR_DELAY = 1.0
NETWORK_DELAY = 5.0
CONFLICT_DELAY = 5.0

_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestThrottled",
        "EC2ThrottledException",
    }
)
_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"}
)
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchEntity", "NotFoundException"})
_CREDENTIAL_CODES = frozenset(
    {"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch"}
)
_IAM_PREFIX = {"amp": "aps", "iam": "iam", "sts": "sts"}
_DENIED_RE = re.compile(
    r"(?:User|Principal):?\s+(?P<principal>\S+)\s+is not authorized to perform:?\s+"
    r"(?P<action>[\w-]+:[\w*]+)"
)


class AwsUnreachable(TemporaryError):
    """The endpoint could not be reached at all (refused, reset, timed out, DNS)."""


class AccessDenied(PermanentError):
    """AWS refused an action to the principal; names both."""

    def __init__(self, action: str, principal: str, detail: str) -> None:
        self.action = action
        self.principal = principal
        super().__init__(f"AccessDenied: {principal} is not allowed to call {action} ({detail})")


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str


_counts: Counter[tuple[str, str]] = Counter()
_counts_lock = threading.Lock()


def api_call_counts() -> dict[tuple[str, str], int]:
    """Calls made so far by every gateway in this process, per (operation, code)."""
    with _counts_lock:
        return dict(_counts)


def reset_api_call_counts() -> None:
    with _counts_lock:
        _counts.clear()


def _count(operation: str, code: str) -> None:
    with _counts_lock:
        _counts[(operation, code)] += 1


def _policy_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def _bind(fn: Callable[..., T], kwargs: Mapping[str, Any]) -> Callable[[], T]:
    frozen = dict(kwargs)
    return lambda: fn(**frozen)


def _tag_dict(tags: list[Any] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


class AwsGateway:
    """Typed access to the AMP, IAM and STS APIs of one region."""

    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        *,
        session: boto3.session.Session | None = None,
    ) -> None:
        self.region = region
        session = session or boto3.session.Session(region_name=region)
        config = Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"total_max_attempts": 1, "mode": "standard"},
            user_agent_extra="ampd",
        )
        self._amp: PrometheusServiceClient = session.client(
            "amp", region_name=region, endpoint_url=endpoint_url, config=config
        )
        self._iam: IAMClient = session.client("iam", region_name=region, config=config)
        self._sts: STSClient = session.client("sts", region_name=region, config=config)
        self._principal: str | None = None

    # -- the one call path --------------------------------------------------------------

    def _call(self, service: str, operation: str, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except botocore.exceptions.ClientError as e:
            err = e.response.get("Error", {})
            code = str(err.get("Code") or "Unknown")
            message = str(err.get("Message") or err.get("message") or e)
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            _count(operation, code)
            raise self._translate(service, operation, code, message, status) from e
        except (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ConnectionClosedError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ProxyConnectionError,
            botocore.exceptions.HTTPClientError,
        ) as e:
            _count(operation, "NetworkError")
            raise AwsUnreachable(f"{operation}: {e}", delay=NETWORK_DELAY) from e
        except botocore.exceptions.NoCredentialsError as e:
            _count(operation, "NoCredentials")
            raise TemporaryError(
                f"{operation}: no AWS credentials (env, shared config or instance role)",
                delay=30.0,
            ) from e
        except botocore.exceptions.BotoCoreError as e:
            _count(operation, type(e).__name__)
            raise PermanentError(f"{operation}: {e}") from e
        _count(operation, "OK")
        return result

    def _translate(
        self, service: str, operation: str, code: str, message: str, status: int
    ) -> Exception:
        where = f"{operation}: {code}: {message}"
        if code in _THROTTLING_CODES or status == 429:
            return TemporaryError(where, delay=THROTTLE_DELAY)
        if code in _DENIED_CODES or (status == 403 and code not in _CREDENTIAL_CODES):
            m = _DENIED_RE.search(message)
            action = m.group("action") if m else f"{_IAM_PREFIX.get(service, service)}:{operation}"
            principal = m.group("principal") if m else (self._principal or "the caller")
            return AccessDenied(action, principal, message)
        if code in _CREDENTIAL_CODES:
            return TemporaryError(where, delay=30.0)
        if status >= 500 or code in {"InternalServerException", "ServiceUnavailable"}:
            return TemporaryError(where, delay=SERVER_ERROR_DELAY)
        if code == "ConflictException":
            return TemporaryError(where, delay=CONFLICT_DELAY)
        return PermanentError(where)

    def _get(self, service: str, operation: str, fn: Callable[[], T]) -> T | None:
        """A describe/get call whose 'not found' means None."""
        try:
            return self._call(service, operation, fn)
        except PermanentError as e:
            cause = e.__cause__
            if isinstance(cause, botocore.exceptions.ClientError):
                code = cause.response.get("Error", {}).get("Code")
                if code in _NOT_FOUND_CODES:
                    return None
            raise

    # -- STS --------------------------------------------------------------------------------

    def identity(self) -> Identity:
        r = self._call("sts", "GetCallerIdentity", self._sts.get_caller_identity)
        self._principal = r["Arn"]
        return Identity(account=r["Account"], arn=r["Arn"])

    # -- AMP workspaces ---------------------------------------------------------------------

    def list_workspaces(self, alias: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"maxResults": 100}
            if alias:
                kwargs["alias"] = alias
            if token:
                kwargs["nextToken"] = token
            r = self._call("amp", "ListWorkspaces", _bind(self._amp.list_workspaces, kwargs))
            out.extend(dict(w) for w in r.get("workspaces", []))
            token = r.get("nextToken")
            if not token:
                return out

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
        self._call(
            "amp", "DeleteWorkspace", lambda: self._amp.delete_workspace(workspaceId=workspace_id)
        )

    def list_tags(self, arn: str) -> dict[str, str]:
        r = self._call(
            "amp", "ListTagsForResource", lambda: self._amp.list_tags_for_resource(resourceArn=arn)
        )
        return dict(r.get("tags", {}))

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

    def describe_logging(self, workspace_id: str) -> str | None:
        """The log group ARN logging goes to, or None."""
        r = self._get(
            "amp",
            "DescribeLoggingConfiguration",
            lambda: self._amp.describe_logging_configuration(workspaceId=workspace_id),
        )
        if r is None:
            return None
        arn = r.get("loggingConfiguration", {}).get("logGroupArn")
        return str(arn) if arn else None

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
        self._call(
            "amp",
            "DeleteLoggingConfiguration",
            lambda: self._amp.delete_logging_configuration(workspaceId=workspace_id),
        )

    def describe_alertmanager(self, workspace_id: str) -> bytes | None:
        r = self._get(
            "amp",
            "DescribeAlertManagerDefinition",
            lambda: self._amp.describe_alert_manager_definition(workspaceId=workspace_id),
        )
        return bytes(r["alertManagerDefinition"]["data"]) if r is not None else None

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
        self._call(
            "amp",
            "DeleteAlertManagerDefinition",
            lambda: self._amp.delete_alert_manager_definition(workspaceId=workspace_id),
        )

    # -- AMP rule groups namespaces -----------------------------------------------------

    def list_rule_groups(self, workspace_id: str) -> list[dict[str, Any]]:
        """Summaries (name, arn, status, tags): no data."""
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"workspaceId": workspace_id, "maxResults": 100}
            if token:
                kwargs["nextToken"] = token
            r = self._call(
                "amp",
                "ListRuleGroupsNamespaces",
                _bind(self._amp.list_rule_groups_namespaces, kwargs),
            )
            out.extend(dict(n) for n in r.get("ruleGroupsNamespaces", []))
            token = r.get("nextToken")
            if not token:
                return out

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
        self._call(
            "amp",
            "DeleteRuleGroupsNamespace",
            lambda: self._amp.delete_rule_groups_namespace(workspaceId=workspace_id, name=name),
        )

    # -- IAM roles and policies -------------------------------------------------------------

    def get_role(self, name: str) -> dict[str, Any] | None:
        """Arn, trust policy (``AssumeRolePolicyDocument``, a dict) and ``Tags`` (a dict)."""
        r = self._get("iam", "GetRole", lambda: self._iam.get_role(RoleName=name))
        if r is None:
            return None
        role: dict[str, Any] = dict(r["Role"])
        role["Tags"] = _tag_dict(role.get("Tags"))
        return role

    def create_role(
        self, name: str, trust: Mapping[str, Any], tags: Mapping[str, str], description: str
    ) -> str:
        r = self._call(
            "iam",
            "CreateRole",
            lambda: self._iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=_policy_json(trust),
                Description=description,
                Tags=_tag_list(tags),  # type: ignore[arg-type]
            ),
        )
        return r["Role"]["Arn"]

    def update_trust_policy(self, name: str, trust: Mapping[str, Any]) -> None:
        self._call(
            "iam",
            "UpdateAssumeRolePolicy",
            lambda: self._iam.update_assume_role_policy(
                RoleName=name, PolicyDocument=_policy_json(trust)
            ),
        )

    def tag_role(self, name: str, tags: Mapping[str, str]) -> None:
        self._call(
            "iam",
            "TagRole",
            lambda: self._iam.tag_role(RoleName=name, Tags=_tag_list(tags)),  # type: ignore[arg-type]
        )

    def untag_role(self, name: str, keys: list[str]) -> None:
        self._call("iam", "UntagRole", lambda: self._iam.untag_role(RoleName=name, TagKeys=keys))

    def delete_role(self, name: str) -> None:
        """Deletes the role after detaching everything that would block it."""
        for policy in self.list_inline_policies(name):
            self.delete_inline_policy(name, policy)
        for arn in self.list_attached_policies(name):
            self.detach_policy(name, arn)
        r = self._call(
            "iam",
            "ListInstanceProfilesForRole",
            lambda: self._iam.list_instance_profiles_for_role(RoleName=name),
        )
        for profile in r.get("InstanceProfiles", []):
            self.remove_role_from_instance_profile(profile["InstanceProfileName"], name)
        self._call("iam", "DeleteRole", lambda: self._iam.delete_role(RoleName=name))

    def get_inline_policy(self, role: str, policy: str) -> dict[str, Any] | None:
        r = self._get(
            "iam",
            "GetRolePolicy",
            lambda: self._iam.get_role_policy(RoleName=role, PolicyName=policy),
        )
        if r is None:
            return None
        doc = r["PolicyDocument"]
        return dict(json.loads(doc)) if isinstance(doc, str) else dict(doc)

    def list_inline_policies(self, role: str) -> list[str]:
        r = self._call(
            "iam", "ListRolePolicies", lambda: self._iam.list_role_policies(RoleName=role)
        )
        return list(r.get("PolicyNames", []))

    def put_inline_policy(self, role: str, policy: str, doc: Mapping[str, Any]) -> None:
        self._call(
            "iam",
            "PutRolePolicy",
            lambda: self._iam.put_role_policy(
                RoleName=role, PolicyName=policy, PolicyDocument=_policy_json(doc)
            ),
        )

    def delete_inline_policy(self, role: str, policy: str) -> None:
        self._call(
            "iam",
            "DeleteRolePolicy",
            lambda: self._iam.delete_role_policy(RoleName=role, PolicyName=policy),
        )

    def list_attached_policies(self, role: str) -> list[str]:
        r = self._call(
            "iam",
            "ListAttachedRolePolicies",
            lambda: self._iam.list_attached_role_policies(RoleName=role),
        )
        return [p["PolicyArn"] for p in r.get("AttachedPolicies", [])]

    def attach_policy(self, role: str, arn: str) -> None:
        self._call(
            "iam",
            "AttachRolePolicy",
            lambda: self._iam.attach_role_policy(RoleName=role, PolicyArn=arn),
        )

    def detach_policy(self, role: str, arn: str) -> None:
        self._call(
            "iam",
            "DetachRolePolicy",
            lambda: self._iam.detach_role_policy(RoleName=role, PolicyArn=arn),
        )

    # -- IAM instance profiles --------------------------------------------------------------

    def get_instance_profile(self, name: str) -> dict[str, Any] | None:
        """Arn, ``Roles`` (role names) and ``Tags`` (a dict)."""
        r = self._get(
            "iam",
            "GetInstanceProfile",
            lambda: self._iam.get_instance_profile(InstanceProfileName=name),
        )
        if r is None:
            return None
        profile = r["InstanceProfile"]
        return {
            "Arn": profile["Arn"],
            "Roles": [role["RoleName"] for role in profile.get("Roles", [])],
            "Tags": _tag_dict(list(profile.get("Tags", []))),
        }

    def create_instance_profile(self, name: str, tags: Mapping[str, str]) -> None:
        self._call(
            "iam",
            "CreateInstanceProfile",
            lambda: self._iam.create_instance_profile(
                InstanceProfileName=name,
                Tags=_tag_list(tags),  # type: ignore[arg-type]
            ),
        )

    def tag_instance_profile(self, name: str, tags: Mapping[str, str]) -> None:
        self._call(
            "iam",
            "TagInstanceProfile",
            lambda: self._iam.tag_instance_profile(
                InstanceProfileName=name,
                Tags=_tag_list(tags),  # type: ignore[arg-type]
            ),
        )

    def add_role_to_instance_profile(self, name: str, role: str) -> None:
        self._call(
            "iam",
            "AddRoleToInstanceProfile",
            lambda: self._iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role),
        )

    def remove_role_from_instance_profile(self, name: str, role: str) -> None:
        self._call(
            "iam",
            "RemoveRoleFromInstanceProfile",
            lambda: self._iam.remove_role_from_instance_profile(
                InstanceProfileName=name, RoleName=role
            ),
        )

    def delete_instance_profile(self, name: str) -> None:
        profile = self.get_instance_profile(name)
        for role in profile["Roles"] if profile else []:
            self.remove_role_from_instance_profile(name, role)
        self._call(
            "iam",
            "DeleteInstanceProfile",
            lambda: self._iam.delete_instance_profile(InstanceProfileName=name),
        )


def configured_region() -> str | None:
    """The region botocore's own chain would use (AWS_REGION, AWS_DEFAULT_REGION, config)."""
    return boto3.session.Session().region_name or os.environ.get("AWS_REGION") or None


def make_gateway(region: str, endpoint_url: str | None = None) -> AwsGateway:
    """A gateway for ``region``; ``endpoint_url`` overrides the AMP control plane only
    (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_AMP`` etc. are honoured by botocore)."""
    return AwsGateway(region, endpoint_url=endpoint_url)
