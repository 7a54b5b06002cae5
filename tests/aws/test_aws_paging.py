"""Every list ampd reads crosses page boundaries: the emulator answers one item a page.

AWS may cut any list short (IAM says so in its model: "IAM might return fewer than the
MaxItems number of results even when there are more"); a list read as one page loses the
rest. Each test counts the pages asked for, through ``api_call_counts`` (one count per
page) and the emulator's record of requests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from ampd.aws.gateway.client import api_call_counts, make_gateway, reset_api_call_counts
from tests.aws.passes import AwsReadWrite, read_write
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import ANY_POLICY, EC2_TRUST, REGION, AwsEnv

TRUST = EC2_TRUST
DOC = ANY_POLICY
RULES = b"groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n"


@pytest.fixture
def gw(aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator) -> Iterator[AwsReadWrite]:
    aws_emulator.instant()
    yield read_write(make_gateway(REGION))


def paged(em: AwsEmulator) -> None:
    """From here on every list answers one item a page; calls are counted from zero."""
    em.page_size(1)
    em.reset_requests()
    reset_api_call_counts()


def pages(em: AwsEmulator, operation: str) -> int:
    sent = em.calls(operation)
    assert api_call_counts().get((operation, "OK")) == sent  # one count per page
    return sent


def role_with_everything(gw: AwsReadWrite, em: AwsEmulator, role: str) -> None:
    """A role with 3 inline policies, 3 attached managed policies and 2 instance profiles."""
    gw.create_role(role, TRUST, {}, "paging")
    iam = em.client("iam")
    for i in range(3):
        gw.put_inline_policy(role, f"inline-{i}", DOC)
        doc = json.dumps(DOC)
        arn = iam.create_policy(PolicyName=f"{role}-managed-{i}", PolicyDocument=doc)["Policy"]
        gw.attach_policy(role, arn["Arn"])
    for i in range(2):
        gw.create_instance_profile(f"{role}-profile-{i}", {})
        gw.add_role_to_instance_profile(f"{role}-profile-{i}", role)


def test_list_workspaces_reads_every_page(gw: AwsReadWrite, aws_emulator: AwsEmulator) -> None:
    made = {
        str(gw.create_workspace(f"paged-{i}", {}, f"token-{i}", None)["workspaceId"])
        for i in range(3)
    }
    paged(aws_emulator)
    assert {w["workspaceId"] for w in gw.list_workspaces()} == made
    assert pages(aws_emulator, "ListWorkspaces") == 3


def test_list_rule_groups_reads_every_page(gw: AwsReadWrite, aws_emulator: AwsEmulator) -> None:
    ws = str(gw.create_workspace("rules", {}, "token-rules", None)["workspaceId"])
    for i in range(3):
        gw.create_rule_group(ws, f"ns-{i}", RULES, {})
    paged(aws_emulator)
    assert sorted(n["name"] for n in gw.list_rule_groups(ws)) == ["ns-0", "ns-1", "ns-2"]
    assert pages(aws_emulator, "ListRuleGroupsNamespaces") == 3


def test_iam_policy_lists_read_every_page(gw: AwsReadWrite, aws_emulator: AwsEmulator) -> None:
    """Old lines caught: ``list_inline_policies``/``list_attached_policies`` returned the
    first page's ``PolicyNames``/``AttachedPolicies`` only."""
    role_with_everything(gw, aws_emulator, "lists")
    paged(aws_emulator)
    assert sorted(gw.list_inline_policies("lists")) == ["inline-0", "inline-1", "inline-2"]
    assert pages(aws_emulator, "ListRolePolicies") == 3
    attached = gw.list_attached_policies("lists")
    assert sorted(a.rsplit("/", 1)[1] for a in attached) == [f"lists-managed-{i}" for i in range(3)]
    assert pages(aws_emulator, "ListAttachedRolePolicies") == 3


def test_delete_role_clears_every_page_first(gw: AwsReadWrite, aws_emulator: AwsEmulator) -> None:
    """Old lines caught: one page of each list, so DeleteRole met the second policy (or
    instance profile) and failed with DeleteConflict, a permanent error."""
    role_with_everything(gw, aws_emulator, "doomed")
    paged(aws_emulator)
    gw.delete_role("doomed")
    assert gw.get_role("doomed") is None
    for i in range(2):
        profile = gw.get_instance_profile(f"doomed-profile-{i}")
        assert profile is not None and profile["Roles"] == []
    assert pages(aws_emulator, "ListRolePolicies") == 3
    assert pages(aws_emulator, "ListAttachedRolePolicies") == 3
    assert pages(aws_emulator, "ListInstanceProfilesForRole") == 2
    counts = api_call_counts()
    assert counts[("DeleteRolePolicy", "OK")] == 3
    assert counts[("DetachRolePolicy", "OK")] == 3
    assert counts[("RemoveRoleFromInstanceProfile", "OK")] == 2
    assert counts[("DeleteRole", "OK")] == 1


def test_simulate_principal_policy_reads_every_page(gw: AwsReadWrite) -> None:
    """The emulator answers SimulatePrincipalPolicy in one page, so the pages come from
    botocore's Stubber: the second request must carry the first page's Marker."""
    principal = "arn:aws:iam::123456789012:role/r"
    actions = ["aps:RemoteWrite", "aps:QueryMetrics"]
    asked = {"PolicySourceArn": principal, "ActionNames": actions, "ResourceArns": ["*"]}

    def result(action: str, decision: str) -> dict[str, object]:
        return {"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": decision}

    reset_api_call_counts()
    with Stubber(gw._iam) as stub:
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [result("aps:RemoteWrite", "allowed")],
                "IsTruncated": True,
                "Marker": "page-2",
            },
            asked,
        )
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [result("aps:QueryMetrics", "implicitDeny")],
                "IsTruncated": False,
            },
            {**asked, "Marker": "page-2"},
        )
        decisions = gw.simulate_principal_policy(principal, actions, ["*"])
        stub.assert_no_pending_responses()
    assert decisions == {"aps:RemoteWrite": "allowed", "aps:QueryMetrics": "implicitDeny"}
    assert api_call_counts()[("SimulatePrincipalPolicy", "OK")] == 2
