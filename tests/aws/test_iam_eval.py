"""The test harness's IAM policy evaluator (tests/harness/iam_eval.py) and its table of
what each AWS call needs (tests/harness/iam_calls.py): they judge ampd's printed policies,
so they are tested themselves -- above all, a call outside a policy is denied."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.aws_emulator import Recorded
from tests.harness.iam_calls import UnknownCall, authorizations, data_plane_authorizations
from tests.harness.iam_eval import Request, Unsupported, decide, evaluate

WS = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"
ROLE = "arn:aws:iam::123456789012:role/ampd-writer"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


BOUNDARY = {"StringEquals": {"iam:PermissionsBoundary": "arn:aws:iam::123456789012:policy/b"}}

# (name, policy statements, request, decision)
CASES: list[tuple[str, list[dict[str, Any]], Request, str]] = [
    ("nothing allows it", [], Request("aps:RemoteWrite", WS), "implicitDeny"),
    ("exact", [allow("aps:RemoteWrite", WS)], Request("aps:RemoteWrite", WS), "allowed"),
    (
        "another action",
        [allow("aps:RemoteWrite", WS)],
        Request("aps:DeleteWorkspace", WS),
        "implicitDeny",
    ),
    (
        "another resource",
        [allow("aps:RemoteWrite", WS)],
        Request("aps:RemoteWrite", WS.replace("ws-1", "ws-2")),
        "implicitDeny",
    ),
    (
        "action wildcard",
        [allow("aps:Describe*", WS)],
        Request("aps:DescribeWorkspace", WS),
        "allowed",
    ),
    ("action case", [allow("APS:remotewrite", WS)], Request("aps:RemoteWrite", WS), "allowed"),
    (
        "resource case matters",
        [allow("aps:RemoteWrite", WS.upper())],
        Request("aps:RemoteWrite", WS),
        "implicitDeny",
    ),
    (
        "resource wildcard",
        [allow("ssm:GetParameters", "arn:aws:ssm:eu-west-1:123456789012:parameter/fleet/prod/*")],
        Request("ssm:GetParameters", "arn:aws:ssm:eu-west-1:123456789012:parameter/fleet/prod/r/x"),
        "allowed",
    ),
    (
        "resource wildcard stays in its prefix",
        [allow("ssm:GetParameters", "arn:aws:ssm:eu-west-1:123456789012:parameter/fleet/prod/*")],
        Request("ssm:GetParameters", "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db"),
        "implicitDeny",
    ),
    ("question mark", [allow("aps:RemoteWrit?", WS)], Request("aps:RemoteWrite", WS), "allowed"),
    (
        "deny wins",
        [allow("*"), deny("aps:Delete*", WS)],
        Request("aps:DeleteWorkspace", WS),
        "explicitDeny",
    ),
    (
        "NotAction",
        [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}],
        Request("iam:PutRolePolicy", ROLE),
        "implicitDeny",
    ),
    (
        "NotResource",
        [{"Effect": "Allow", "Action": "iam:*", "NotResource": ROLE}],
        Request("iam:PutRolePolicy", ROLE),
        "implicitDeny",
    ),
    (
        "condition met",
        [allow("iam:CreateRole", ROLE, Condition=BOUNDARY)],
        Request(
            "iam:CreateRole",
            ROLE,
            {"iam:PermissionsBoundary": "arn:aws:iam::123456789012:policy/b"},
        ),
        "allowed",
    ),
    (
        "condition: another value",
        [allow("iam:CreateRole", ROLE, Condition=BOUNDARY)],
        Request("iam:CreateRole", ROLE, {"iam:PermissionsBoundary": "arn:aws:iam::1:policy/x"}),
        "implicitDeny",
    ),
    (
        "condition: key missing",
        [allow("iam:CreateRole", ROLE, Condition=BOUNDARY)],
        Request("iam:CreateRole", ROLE),
        "implicitDeny",
    ),
    (
        "condition: one of several values",
        [
            allow(
                "iam:AttachRolePolicy", ROLE, Condition={"ArnEquals": {"iam:PolicyARN": ["a", "b"]}}
            )
        ],
        Request("iam:AttachRolePolicy", ROLE, {"iam:PolicyARN": "b"}),
        "allowed",
    ),
    (
        "StringLike",
        [
            allow(
                "aps:CreateWorkspace", Condition={"StringLike": {"aws:RequestTag/ampd:stack": "p*"}}
            )
        ],
        Request("aps:CreateWorkspace", "*", {"aws:RequestTag/ampd:stack": "prod"}),
        "allowed",
    ),
    (
        "negated operator, key missing: holds",
        [allow("*", Condition={"StringNotEquals": {"aws:RequestTag/x": "y"}})],
        Request("aps:TagResource", WS),
        "allowed",
    ),
    (
        "IfExists, key missing: holds",
        [allow("*", Condition={"StringEqualsIfExists": {"aws:RequestTag/x": "y"}})],
        Request("aps:TagResource", WS),
        "allowed",
    ),
    (
        "Null",
        [allow("*", Condition={"Null": {"aws:RequestTag/x": "true"}})],
        Request("aps:TagResource", WS, {"aws:RequestTag/x": "1"}),
        "implicitDeny",
    ),
]


@pytest.mark.parametrize(
    ("statements", "request_", "decision"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_evaluate(statements: list[dict[str, Any]], request_: Request, decision: str) -> None:
    assert evaluate([doc(*statements)], request_) == decision


def test_statement_may_be_one_object_and_policies_json_text() -> None:
    one = {"Version": "2012-10-17", "Statement": allow("aps:RemoteWrite", WS)}
    assert evaluate([one], Request("aps:RemoteWrite", WS)) == "allowed"
    assert evaluate(['{"Statement": []}', one], Request("aps:RemoteWrite", WS)) == "allowed"


def test_a_boundary_limits_and_never_grants() -> None:
    everything = doc(allow("*"))
    boundary = doc(allow("aps:RemoteWrite", WS))
    assert decide([everything], Request("aps:RemoteWrite", WS), boundary) == "allowed"
    assert decide([everything], Request("iam:PutRolePolicy", ROLE), boundary) == "implicitDeny"
    assert decide([doc()], Request("aps:RemoteWrite", WS), boundary) == "implicitDeny"
    denying = doc(allow("*"), deny("aps:RemoteWrite"))
    assert decide([everything], Request("aps:RemoteWrite", WS), denying) == "explicitDeny"


@pytest.mark.parametrize(
    "statement",
    [
        allow("aps:*", "arn:aws:iam::123456789012:role/${aws:username}"),
        allow("*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}),
        allow("*", Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "1"}}),
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Effect": "Allow", "Resource": "*"},
    ],
)
def test_what_it_cannot_judge_is_refused_not_passed(statement: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        evaluate([doc(statement)], Request("aps:RemoteWrite", WS, {"aws:TagKeys": ["a"]}))


# -- the table of calls ----------------------------------------------------------------------


def rec(service: str, operation: str, path: str = "/", **params: Any) -> Recorded:
    return Recorded(service, operation, "POST", 200, path, 0.0, "eu-west-1", params)


def test_calls_map_to_their_authorizations() -> None:
    create = rec(
        "iam",
        "CreateRole",
        RoleName="ampd-writer",
        PermissionsBoundary="arn:aws:iam::123456789012:policy/b",
        **{"Tags.member.1.Key": "ampd:stack", "Tags.member.1.Value": "prod"},
    )
    assert [(r.action, r.resource) for r in authorizations(create)] == [
        ("iam:CreateRole", ROLE),
        ("iam:TagRole", ROLE),
    ]
    assert authorizations(create)[0].context["iam:PermissionsBoundary"].endswith("policy/b")
    add = rec("iam", "AddRoleToInstanceProfile", InstanceProfileName="p", RoleName="ampd-writer")
    assert [(r.action, r.resource) for r in authorizations(add)] == [
        ("iam:AddRoleToInstanceProfile", "arn:aws:iam::123456789012:instance-profile/p"),
        ("iam:PassRole", ROLE),
    ]
    ns = rec("aps", "PutRuleGroupsNamespace", "/workspaces/ws-1/rulegroupsnamespaces/node")
    assert [r.resource for r in authorizations(ns)] == [
        "arn:aws:aps:eu-west-1:123456789012:rulegroupsnamespace/ws-1/node"
    ]
    tag = rec("aps", "TagResource", "/tags/" + WS.replace(":", "%3A"), tags={"a": "b"})
    assert [(r.action, r.resource) for r in authorizations(tag)] == [("aps:TagResource", WS)]
    ssm = rec("ssm", "GetParameters", Names=["/fleet/prod/ampd", "/fleet/prod/rules/node.yml"])
    assert [r.resource.rpartition(":")[2] for r in authorizations(ssm)] == [
        "parameter/fleet/prod/ampd",
        "parameter/fleet/prod/rules/node.yml",
    ]
    assert authorizations(rec("sts", "GetCallerIdentity")) == []
    assert [
        r.action
        for r in data_plane_authorizations("/workspaces/ws-1/api/v1/remote_write", "eu-west-1")
    ] == ["aps:RemoteWrite"]


def test_an_unknown_call_fails_rather_than_passes() -> None:
    with pytest.raises(UnknownCall):
        authorizations(rec("iam", "CreateUser", UserName="x"))
    with pytest.raises(UnknownCall):
        authorizations(rec("ec2", "RunInstances"))


def test_a_call_outside_the_policy_is_denied() -> None:
    """The writer's policy allows its workspace and its state: anything else is denied,
    whatever the call -- the property every proof in test_iam_policy_proof relies on."""
    from ampd.aws.plan.policy import writer_policy  # noqa: PLC0415 (the thing under test)

    policy = writer_policy(WS, "ssm:/fleet/prod/ampd")
    inside = [
        rec("ssm", "GetParameters", Names=["/fleet/prod/ampd", "/fleet/prod/rules/node.yml"]),
    ]
    outside = [
        rec("ssm", "GetParameters", Names=["/prod/db/password"]),
        rec("iam", "PutRolePolicy", RoleName="Admin", PolicyName="x"),
        rec("iam", "UpdateAssumeRolePolicy", RoleName="ampd-writer"),
        rec("aps", "DeleteWorkspace", "/workspaces/ws-1"),
        rec("aps", "DescribeWorkspace", "/workspaces/ws-2"),
    ]
    for r in inside:
        assert {evaluate([policy], q) for q in authorizations(r)} == {"allowed"}, r
    for r in outside:
        assert "implicitDeny" in {evaluate([policy], q) for q in authorizations(r)}, r
