"""The model-conformance checker (tests/harness/model_check.py): it judges every response the
emulator gives, so it is tested itself -- conforming answers pass, and each kind of
difference from botocore's model is reported."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.harness.model_check import COMMON_ERRORS, check_response

ARN = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"


def summary(**extra: Any) -> dict[str, Any]:
    """A WorkspaceSummary with every member the model defines for it."""
    return {
        "workspaceId": "ws-1",
        "alias": "prod",
        "arn": ARN,
        "status": {"statusCode": "ACTIVE"},
        "createdAt": 1700000000.5,
        "tags": {"team": "obs"},
        "kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-0000-0000-0000-0123456789ab",
        **extra,
    }


def description(**extra: Any) -> dict[str, Any]:
    return summary(prometheusEndpoint="https://aps-workspaces.example/workspaces/ws-1/", **extra)


def js(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def aps(op: str, doc: Any, status: int = 200, **headers: str) -> list[str]:
    return check_response("aps", op, status, headers, js(doc))


def aps_error(op: str, status: int, code: str, **members: str) -> list[str]:
    body = {"message": "m", **members}
    return check_response("aps", op, status, {"x-amzn-ErrorType": f"{code}:http://x/"}, js(body))


ROLE_XML = """<GetRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <GetRoleResult>
    <Role>
      <Path>/</Path>
      <RoleName>ampd-writer</RoleName>
      <RoleId>AROA0123456789ABCDEFG</RoleId>
      <Arn>arn:aws:iam::123456789012:role/ampd-writer</Arn>
      <CreateDate>2026-01-02T03:04:05Z</CreateDate>
      <AssumeRolePolicyDocument>%7B%7D</AssumeRolePolicyDocument>
      <MaxSessionDuration>3600</MaxSessionDuration>
      <Tags><member><Key>ampd:managed</Key><Value>true</Value></member></Tags>
    </Role>
  </GetRoleResult>
  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</GetRoleResponse>"""


def iam(op: str, xml: str, status: int = 200) -> list[str]:
    return check_response("iam", op, status, {"Content-Type": "text/xml"}, xml.encode())


def iam_error(op: str, status: int, code: str) -> list[str]:
    xml = (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error>'
        f"<Type>Sender</Type><Code>{code}</Code><Message>m</Message></Error>"
        "<RequestId>r-1</RequestId></ErrorResponse>"
    )
    return iam(op, xml, status)


# ---------------------------------------------------------------- conforming answers


@pytest.mark.parametrize(
    ("op", "status", "doc"),
    [
        ("ListWorkspaces", 200, {"workspaces": [summary()], "nextToken": "t"}),
        ("ListWorkspaces", 200, {"workspaces": []}),
        ("DescribeWorkspace", 200, {"workspace": description()}),
        (
            "CreateWorkspace",
            202,
            {"workspaceId": "ws-1", "arn": ARN, "status": {"statusCode": "CREATING"}},
        ),
        (
            "DescribeLoggingConfiguration",
            200,
            {
                "loggingConfiguration": {
                    "status": {"statusCode": "UPDATE_FAILED", "statusReason": "no such group"},
                    "workspace": "ws-1",
                    "logGroupArn": "arn:aws:logs:eu-west-1:123456789012:log-group:g:*",
                    "createdAt": 1700000000,
                    "modifiedAt": 1700000001,
                }
            },
        ),
        (
            "DescribeAlertManagerDefinition",
            200,
            {
                "alertManagerDefinition": {
                    "status": {"statusCode": "ACTIVE"},
                    "data": base64.b64encode(b"alertmanager_config: {}").decode(),
                    "createdAt": 1700000000,
                    "modifiedAt": 1700000000,
                }
            },
        ),
    ],
)
def test_conforming_aps_answers_pass(op: str, status: int, doc: Any) -> None:
    assert aps(op, doc, status) == []


def test_an_operation_without_output_may_answer_an_empty_body() -> None:
    assert check_response("aps", "DeleteWorkspace", 202, {}, b"") == []
    assert check_response("aps", "DeleteWorkspace", 202, {}, b'{"x": 1}') != []


def test_conforming_iam_answer_passes() -> None:
    assert iam("GetRole", ROLE_XML) == []


@pytest.mark.parametrize(
    ("op", "status", "code"),
    [
        ("GetRole", 404, "NoSuchEntity"),  # by error.code
        ("GetRole", 500, "ServiceFailure"),
        ("GetRole", 400, "Throttling"),  # common to every endpoint
        ("CreateRole", 409, "EntityAlreadyExists"),
        ("DeleteRole", 409, "DeleteConflict"),
        ("DeleteRole", 409, "ConcurrentModification"),
    ],
)
def test_modelled_and_common_iam_errors_pass(op: str, status: int, code: str) -> None:
    assert iam_error(op, status, code) == []


def test_modelled_aps_errors_pass_with_their_status_and_members() -> None:
    assert (
        aps_error(
            "DescribeWorkspace",
            404,
            "ResourceNotFoundException",
            resourceId="ws-1",
            resourceType="Workspace",
        )
        == []
    )
    throttled = check_response(
        "aps",
        "DescribeWorkspace",
        429,
        {"X-Amzn-ErrorType": "ThrottlingException", "Retry-After": "3"},
        js({"message": "Rate exceeded"}),
    )
    assert throttled == []
    assert aps_error("ListWorkspaces", 403, "UnrecognizedClientException") == []


def test_json_protocol_error_codes_drop_the_namespace() -> None:
    body = js({"__type": "com.amazonaws.ssm#InvalidKeyId", "message": "m"})
    assert check_response("ssm", "GetParameters", 400, {}, body) == []


def test_s3_checks_status_and_error_code_only() -> None:
    assert check_response("s3", "GetObject", 200, {}, b"\x00 any blob") == []
    assert check_response("s3", "HeadObject", 404, {}, b"") == []
    assert check_response("s3", "GetObject", 304, {"ETag": '"e"'}, b"") == []
    assert check_response("aps", "DescribeWorkspace", 304, {}, b"") != []
    no_key = b"<Error><Code>NoSuchKey</Code><Message>m</Message></Error>"
    assert check_response("s3", "GetObject", 404, {}, no_key) == []


# ---------------------------------------------------------------- each kind of violation


def test_a_member_the_shape_does_not_define_is_reported() -> None:
    doc = {"workspaces": [summary(prometheusEndpoint="https://x/")]}
    assert aps("ListWorkspaces", doc) == [
        "ListWorkspaces: workspaces[0].prometheusEndpoint: not in WorkspaceSummary"
    ]


def test_a_missing_required_member_is_reported() -> None:
    ws = description()
    del ws["status"]
    assert aps("DescribeWorkspace", {"workspace": ws}) == [
        "DescribeWorkspace: workspace.status: required by WorkspaceDescription, missing"
    ]
    assert aps("ListWorkspaces", {}) == [
        "ListWorkspaces: workspaces: required by ListWorkspacesResponse, missing"
    ]


def test_null_counts_as_absent() -> None:
    assert aps("DescribeWorkspace", {"workspace": description(alias=None)}) == []
    problems = aps("DescribeWorkspace", {"workspace": description(arn=None)})
    assert problems == [
        "DescribeWorkspace: workspace.arn: required by WorkspaceDescription, missing"
    ]


def test_a_value_outside_the_enum_is_reported() -> None:
    doc = {"workspace": description(status={"statusCode": "UPDATE_FAILED"})}
    (problem,) = aps("DescribeWorkspace", doc)
    assert problem.startswith(
        "DescribeWorkspace: workspace.status.statusCode: 'UPDATE_FAILED' not in WorkspaceStatusCode"
    )


@pytest.mark.parametrize(
    ("member", "value", "expected"),
    [
        ("alias", 7, "workspace.alias: int, the model says string"),
        ("createdAt", "2026-01-01T00:00:00Z", "is not an epoch-seconds number"),
        ("createdAt", True, "is not an epoch-seconds number"),
        ("tags", ["team"], "workspace.tags: list, the model says map"),
        ("status", "ACTIVE", "workspace.status: str, the model says structure"),
    ],
)
def test_a_wrong_type_is_reported(member: str, value: Any, expected: str) -> None:
    (problem,) = aps("DescribeWorkspace", {"workspace": description(**{member: value})})
    assert expected in problem


def test_lengths_and_patterns_are_held() -> None:
    (long,) = aps("DescribeWorkspace", {"workspace": description(alias="a" * 101)})
    assert long == "DescribeWorkspace: workspace.alias: length 101 > max 100"
    (empty,) = aps("DescribeWorkspace", {"workspace": description(alias="")})
    assert empty == "DescribeWorkspace: workspace.alias: length 0 < min 1"
    too_many = {f"k{i}": "v" for i in range(51)}
    (tags,) = aps("DescribeWorkspace", {"workspace": description(tags=too_many)})
    assert tags == "DescribeWorkspace: workspace.tags: 51 entries > max 50"
    (arn,) = aps("DescribeWorkspace", {"workspace": description(arn="arn:aws:s3:::bucket")})
    assert "workspace.arn: 'arn:aws:s3:::bucket' does not match the pattern" in arn


def test_a_blob_must_be_base64() -> None:
    doc = {
        "alertManagerDefinition": {
            "status": {"statusCode": "ACTIVE"},
            "data": "not base64!",
            "createdAt": 1,
            "modifiedAt": 1,
        }
    }
    assert aps("DescribeAlertManagerDefinition", doc) == [
        "DescribeAlertManagerDefinition: alertManagerDefinition.data: not base64"
    ]


def test_a_success_status_other_than_the_models_is_reported() -> None:
    assert check_response("aps", "DeleteWorkspace", 200, {}, b"") == [
        "DeleteWorkspace: status 200, the model says 202"
    ]
    ok = {"name": "r", "arn": ARN + "/rulegroupsnamespace/r", "status": {"statusCode": "CREATING"}}
    assert aps("CreateRuleGroupsNamespace", ok, 202) == []
    assert aps("CreateRuleGroupsNamespace", ok, 200) == [
        "CreateRuleGroupsNamespace: status 200, the model says 202"
    ]


def test_an_error_at_a_status_other_than_the_models_is_reported() -> None:
    assert aps_error("DescribeWorkspace", 400, "ThrottlingException") == [
        "DescribeWorkspace: error ThrottlingException: status 400, the model says 429"
    ]
    assert iam_error("GetRole", 400, "NoSuchEntity") == [
        "GetRole: error NoSuchEntity: status 400, the model says 404"
    ]


def test_a_retry_after_header_must_be_an_integer() -> None:
    headers = {"x-amzn-ErrorType": "ThrottlingException", "Retry-After": "soon"}
    assert check_response("aps", "DescribeWorkspace", 429, headers, js({"message": "m"})) == [
        "DescribeWorkspace: error ThrottlingException: header retryAfterSeconds: 'soon' is not "
        "an integer"
    ]


def test_an_error_code_the_operation_never_sends_is_reported() -> None:
    (api_gw,) = aps_error("DescribeWorkspace", 404, "NotFoundException")
    assert api_gw.startswith(
        "DescribeWorkspace: error NotFoundException (status 404) is not one the model lists"
    )
    (ec2,) = iam_error("GetRole", 503, "RequestLimitExceeded")
    assert "error RequestLimitExceeded (status 503) is not one the model lists" in ec2
    upload = b"<Error><Code>NoSuchUpload</Code></Error>"
    assert check_response("s3", "GetObject", 404, {}, upload) != []
    slow = b"<Error><Code>SlowDown</Code></Error>"  # S3's own: fine from S3, not from IAM
    assert check_response("s3", "GetObject", 503, {}, slow) == []
    assert iam_error("GetRole", 503, "SlowDown") != []
    assert "RequestLimitExceeded" not in COMMON_ERRORS


def test_a_modelled_json_error_without_its_required_members_is_reported() -> None:
    assert aps_error("DescribeWorkspace", 404, "ResourceNotFoundException") == [
        "DescribeWorkspace: error ResourceNotFoundException: resourceId: required by "
        "ResourceNotFoundException, missing",
        "DescribeWorkspace: error ResourceNotFoundException: resourceType: required by "
        "ResourceNotFoundException, missing",
    ]


def test_an_error_without_a_code_is_reported() -> None:
    assert check_response("aps", "DescribeWorkspace", 500, {}, b"oops") == [
        "DescribeWorkspace: status 500 with no error code"
    ]


def test_an_iam_answer_missing_a_required_member_is_reported() -> None:
    xml = ROLE_XML.replace("<RoleName>ampd-writer</RoleName>", "")
    assert iam("GetRole", xml) == ["GetRole: Role.RoleName: required by Role, missing"]


def test_an_iam_answer_with_an_element_the_shape_lacks_is_reported() -> None:
    xml = ROLE_XML.replace("<Path>/</Path>", "<Path>/</Path><Color>red</Color>")
    assert iam("GetRole", xml) == ["GetRole: Role.Color: not in Role"]


def test_an_iam_answer_with_a_bad_value_is_reported() -> None:
    xml = ROLE_XML.replace(
        "<MaxSessionDuration>3600</MaxSessionDuration>",
        "<MaxSessionDuration>60</MaxSessionDuration>",
    )
    assert iam("GetRole", xml) == ["GetRole: Role.MaxSessionDuration: 60 < min 3600"]
    bad_date = ROLE_XML.replace("2026-01-02T03:04:05Z", "yesterday")
    assert iam("GetRole", bad_date) != []


def test_an_iam_envelope_is_checked() -> None:
    renamed = ROLE_XML.replace("GetRoleResponse", "RoleResponse")
    assert iam("GetRole", renamed) == [
        "GetRole: root element <RoleResponse>, the model says <GetRoleResponse>"
    ]
    no_result = ROLE_XML.replace("GetRoleResult", "Result")
    assert "GetRole: no <GetRoleResult> element" in iam("GetRole", no_result)


def test_unknown_services_and_operations_are_reported() -> None:
    assert check_response("ec2", "DescribeInstances", 200, {}, b"") != []
    assert check_response("aps", "DescribeNothing", 200, {}, b"{}") == [
        "DescribeNothing: not an operation of amp"
    ]
