"""The AWS emulator answers as botocore's service models describe AWS (issue #24): status
codes, transitions (CREATING, UPDATING, DELETING), AMP's validation of rule and alert
manager data, 404s, throttling with Retry-After, alias prefixes, paging, and shapes."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import REGION
from tests.harness.wait import wait_for

RULES = b"groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n"
ALERTMANAGER = (
    b"alertmanager_config: |\n  route:\n    receiver: default\n  receivers:\n    - name: default\n"
)
LOG_GROUP = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/amp:*"


def _amp(em: AwsEmulator) -> Any:
    return em.client("amp", REGION)


def _no_retry(em: AwsEmulator, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=em.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def _code(status: dict[str, Any]) -> str:
    return str(status["statusCode"])


def _active_workspace(em: AwsEmulator, alias: str = "fidelity") -> str:
    em.instant()
    return str(_amp(em).create_workspace(alias=alias)["workspaceId"])


def _transitions(em: AwsEmulator) -> None:
    """Workspaces come up at once; the other transitions take long enough to be seen."""
    em.creation_delay(0.0)
    em.transition_delay(2.0)  # long enough to be seen on a loaded machine


def test_writes_answer_the_models_status_codes(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator)
    amp = _amp(aws_emulator)

    def status(r: dict[str, Any]) -> int:
        return int(r["ResponseMetadata"]["HTTPStatusCode"])

    assert status(amp.create_rule_groups_namespace(workspaceId=ws, name="n", data=RULES)) == 202
    assert status(amp.put_rule_groups_namespace(workspaceId=ws, name="n", data=RULES)) == 202
    assert status(amp.delete_rule_groups_namespace(workspaceId=ws, name="n")) == 202
    assert status(amp.create_logging_configuration(workspaceId=ws, logGroupArn=LOG_GROUP)) == 202
    assert status(amp.update_logging_configuration(workspaceId=ws, logGroupArn=LOG_GROUP)) == 202
    assert status(amp.delete_logging_configuration(workspaceId=ws)) == 202
    assert (
        status(amp.update_workspace_configuration(workspaceId=ws, retentionPeriodInDays=9)) == 202
    )
    assert status(amp.update_workspace_alias(workspaceId=ws, alias="renamed")) == 204
    assert status(amp.delete_workspace(workspaceId=ws)) == 202


def test_deleted_workspace_is_deleting_then_gone(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator)
    aws_emulator.transition_delay(0.5)
    amp = _amp(aws_emulator)
    amp.delete_workspace(workspaceId=ws)
    assert _code(amp.describe_workspace(workspaceId=ws)["workspace"]["status"]) == "DELETING"
    listed = amp.list_workspaces()["workspaces"]
    assert [_code(w["status"]) for w in listed if w["workspaceId"] == ws] == ["DELETING"]
    with pytest.raises(ClientError) as e:
        amp.update_workspace_alias(workspaceId=ws, alias="late")
    assert e.value.response["Error"]["Code"] == "ConflictException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    def gone() -> bool:
        return ws not in [w["workspaceId"] for w in amp.list_workspaces()["workspaces"]]

    wait_for(gone, 10, what="the deleted workspace to disappear")
    with pytest.raises(ClientError) as e:
        amp.describe_workspace(workspaceId=ws)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_new_workspace_is_creating_then_active(aws_emulator: AwsEmulator) -> None:
    amp = _amp(aws_emulator)
    created = amp.create_workspace(alias="slow")
    ws = created["workspaceId"]
    assert _code(created["status"]) == "CREATING"
    assert _code(amp.describe_workspace(workspaceId=ws)["workspace"]["status"]) == "CREATING"

    def active() -> bool:
        return _code(amp.describe_workspace(workspaceId=ws)["workspace"]["status"]) == "ACTIVE"

    wait_for(active, 10, what="the workspace to become ACTIVE")


@pytest.mark.parametrize(
    "data", [b"this: is: not: rules", b"groups:\n  - name: g\n    rules:\n      - record: r\n"]
)
def test_invalid_rules_end_in_creation_failed_with_a_reason(
    aws_emulator: AwsEmulator, data: bytes
) -> None:
    ws = _active_workspace(aws_emulator)
    _transitions(aws_emulator)
    amp = _amp(aws_emulator)
    created = amp.create_rule_groups_namespace(workspaceId=ws, name="bad", data=data)
    assert _code(created["status"]) == "CREATING"
    assert created["arn"] == (f"arn:aws:aps:{REGION}:123456789012:rulegroupsnamespace/{ws}/bad")

    def settled() -> dict[str, Any] | None:
        st = amp.describe_rule_groups_namespace(workspaceId=ws, name="bad")
        status: dict[str, Any] = st["ruleGroupsNamespace"]["status"]
        return status if _code(status) != "CREATING" else None

    status = wait_for(settled, 10, what="the namespace to settle")
    assert _code(status) == "CREATION_FAILED"
    assert "invalid rule groups namespace data" in status["statusReason"]


def test_rule_groups_put_is_updating_then_active_or_update_failed(
    aws_emulator: AwsEmulator,
) -> None:
    ws = _active_workspace(aws_emulator)
    amp = _amp(aws_emulator)
    amp.create_rule_groups_namespace(workspaceId=ws, name="n", data=RULES, tags={"k": "v"})
    _transitions(aws_emulator)
    put = amp.put_rule_groups_namespace(workspaceId=ws, name="n", data=RULES + b"# v2\n")
    assert _code(put["status"]) == "UPDATING"

    def status() -> dict[str, Any]:
        doc: dict[str, Any] = amp.describe_rule_groups_namespace(workspaceId=ws, name="n")
        return dict(doc["ruleGroupsNamespace"]["status"])

    wait_for(lambda: _code(status()) == "ACTIVE", 10, what="UPDATING to end")
    amp.put_rule_groups_namespace(workspaceId=ws, name="n", data=b"groups: 3")
    wait_for(lambda: _code(status()) == "UPDATE_FAILED", 10, what="the bad put to fail")
    assert "groups" in status()["statusReason"]
    summary = amp.list_rule_groups_namespaces(workspaceId=ws)["ruleGroupsNamespaces"][0]
    assert set(summary) == {"name", "arn", "status", "createdAt", "modifiedAt", "tags"}
    described = amp.describe_rule_groups_namespace(workspaceId=ws, name="n")["ruleGroupsNamespace"]
    assert set(described) == set(summary) | {"data"}
    assert amp.list_tags_for_resource(resourceArn=summary["arn"])["tags"] == {"k": "v"}
    amp.tag_resource(resourceArn=summary["arn"], tags={"more": "1"})
    amp.untag_resource(resourceArn=summary["arn"], tagKeys=["k"])
    assert amp.list_tags_for_resource(resourceArn=summary["arn"])["tags"] == {"more": "1"}
    ws_arn = amp.describe_workspace(workspaceId=ws)["workspace"]["arn"]
    amp.tag_resource(resourceArn=ws_arn, tags={"w": "1"})
    assert amp.list_tags_for_resource(resourceArn=ws_arn)["tags"] == {"w": "1"}


def test_deleted_children_are_deleting_then_gone(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator)
    amp = _amp(aws_emulator)
    amp.create_rule_groups_namespace(workspaceId=ws, name="n", data=RULES)
    amp.create_logging_configuration(workspaceId=ws, logGroupArn=LOG_GROUP)
    _transitions(aws_emulator)
    amp.delete_rule_groups_namespace(workspaceId=ws, name="n")
    amp.delete_logging_configuration(workspaceId=ws)
    got = amp.describe_rule_groups_namespace(workspaceId=ws, name="n")["ruleGroupsNamespace"]
    assert _code(got["status"]) == "DELETING"
    logging = amp.describe_logging_configuration(workspaceId=ws)["loggingConfiguration"]
    assert _code(logging["status"]) == "DELETING"
    with pytest.raises(ClientError) as e:
        amp.put_rule_groups_namespace(workspaceId=ws, name="n", data=RULES)
    assert e.value.response["Error"]["Code"] == "ConflictException"

    def gone() -> bool:
        if amp.list_rule_groups_namespaces(workspaceId=ws)["ruleGroupsNamespaces"]:
            return False
        try:
            amp.describe_logging_configuration(workspaceId=ws)
        except ClientError as e:
            return bool(e.response["Error"]["Code"] == "ResourceNotFoundException")
        return False

    wait_for(gone, 10, what="the namespace and the logging configuration to go")


def test_alert_manager_definition_is_validated(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator)
    _transitions(aws_emulator)
    amp = _amp(aws_emulator)
    created = amp.create_alert_manager_definition(workspaceId=ws, data=b"route: {}")
    assert _code(created["status"]) == "CREATING"

    def status() -> dict[str, Any]:
        doc = amp.describe_alert_manager_definition(workspaceId=ws)
        return dict(doc["alertManagerDefinition"]["status"])

    wait_for(lambda: _code(status()) != "CREATING", 10, what="CREATING to end")
    assert _code(status()) == "CREATION_FAILED"
    assert "alertmanager_config" in status()["statusReason"]
    amp.put_alert_manager_definition(workspaceId=ws, data=ALERTMANAGER)
    wait_for(lambda: _code(status()) == "ACTIVE", 10, what="the good put to apply")


def test_logging_describe_without_configuration_is_404(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator)
    amp = _amp(aws_emulator)
    with pytest.raises(ClientError) as e:
        amp.describe_logging_configuration(workspaceId=ws)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        amp.create_logging_configuration(workspaceId=ws, logGroupArn="arn:aws:logs:nope")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    _transitions(aws_emulator)
    created = amp.create_logging_configuration(workspaceId=ws, logGroupArn=LOG_GROUP)
    assert _code(created["status"]) == "CREATING"

    def status() -> str:
        return _code(
            amp.describe_logging_configuration(workspaceId=ws)["loggingConfiguration"]["status"]
        )

    wait_for(lambda: status() == "ACTIVE", 10, what="logging to become ACTIVE")


def test_configuration_updating_then_active_and_failed_on_request(
    aws_emulator: AwsEmulator,
) -> None:
    ws = _active_workspace(aws_emulator)
    _transitions(aws_emulator)
    amp = _amp(aws_emulator)

    def config() -> dict[str, Any]:
        doc = amp.describe_workspace_configuration(workspaceId=ws)
        return dict(doc["workspaceConfiguration"])

    updated = amp.update_workspace_configuration(workspaceId=ws, retentionPeriodInDays=30)
    assert _code(updated["status"]) == "UPDATING"
    assert _code(config()["status"]) == "UPDATING"
    wait_for(lambda: _code(config()["status"]) == "ACTIVE", 10, what="the update to apply")
    assert config()["retentionPeriodInDays"] == 30
    aws_emulator.fail_next_configuration_update("quota exceeded")
    amp.update_workspace_configuration(workspaceId=ws, retentionPeriodInDays=60)
    wait_for(lambda: _code(config()["status"]) != "UPDATING", 10, what="the update to fail")
    failed = config()
    assert failed["status"] == {"statusCode": "UPDATE_FAILED", "statusReason": "quota exceeded"}
    assert failed["retentionPeriodInDays"] == 30


def test_configuration_fields_of_2026_round_trip(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator)
    amp = _amp(aws_emulator)
    limits = [{"labelSet": {"team": "a"}, "limits": {"maxSeries": 1000}}]
    amp.update_workspace_configuration(
        workspaceId=ws,
        retentionPeriodInDays=2000,  # above the old, invented 1095 bound
        limitsPerLabelSet=limits,
        outOfOrderTimeWindowInSeconds=600,
        ruleQueryOffsetInSeconds=30,
    )
    got = amp.describe_workspace_configuration(workspaceId=ws)["workspaceConfiguration"]
    assert got["limitsPerLabelSet"] == limits
    assert got["retentionPeriodInDays"] == 2000
    assert got["outOfOrderTimeWindowInSeconds"] == 600
    assert got["ruleQueryOffsetInSeconds"] == 30


def test_amp_throttling_is_429_with_retry_after(aws_emulator: AwsEmulator) -> None:
    aws_emulator.throttle("ListWorkspaces", 1, retry_after=7)
    with pytest.raises(ClientError) as e:
        _no_retry(aws_emulator, "amp").list_workspaces()
    meta = e.value.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 429
    assert meta["HTTPHeaders"]["retry-after"] == "7"
    assert e.value.response["Error"]["Code"] == "ThrottlingException"
    aws_emulator.throttle("ListRoles", 1)
    with pytest.raises(ClientError) as e:
        _no_retry(aws_emulator, "iam").list_roles()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Code"] == "Throttling"


def test_errors_injected_with_a_code(aws_emulator: AwsEmulator) -> None:
    iam = _no_retry(aws_emulator, "iam")
    aws_emulator.fail("CreateRole", 1, status=409, code="EntityAlreadyExists")
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    assert e.value.response["Error"]["Code"] == "EntityAlreadyExists"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    ws = _active_workspace(aws_emulator)
    aws_emulator.fail("PutRuleGroupsNamespace", 1, status=404, code="ResourceNotFoundException")
    with pytest.raises(ClientError) as e:
        _amp(aws_emulator).put_rule_groups_namespace(workspaceId=ws, name="n", data=RULES)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "ResourceNotFoundException"
    )


def test_alias_filter_is_a_prefix(aws_emulator: AwsEmulator) -> None:
    aws_emulator.instant()
    amp = _amp(aws_emulator)
    for alias in ("team-a", "team-b", "other"):
        amp.create_workspace(alias=alias)
    found = sorted(w["alias"] for w in amp.list_workspaces(alias="team")["workspaces"])
    assert found == ["team-a", "team-b"]


def test_summaries_carry_no_prometheus_endpoint(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator)
    amp = _amp(aws_emulator)
    summary = amp.list_workspaces()["workspaces"][0]
    assert "prometheusEndpoint" not in summary
    assert "prometheusEndpoint" in amp.describe_workspace(workspaceId=ws)["workspace"]


def _pages(client: Any, op: str, key: str, **kwargs: Any) -> list[list[Any]]:
    return [list(p[key]) for p in client.get_paginator(op).paginate(**kwargs)]


def test_page_size_pages_every_list(aws_emulator: AwsEmulator) -> None:
    ws = _active_workspace(aws_emulator, "p-1")
    amp = _amp(aws_emulator)
    amp.create_workspace(alias="p-2")
    for name in ("a", "b", "c"):
        amp.create_rule_groups_namespace(workspaceId=ws, name=name, data=RULES)
    iam = aws_emulator.client("iam", REGION)
    iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")
    doc = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "aps:*", "Resource": "*"}],
        }
    )
    for i in range(3):
        iam.put_role_policy(RoleName="r", PolicyName=f"p{i}", PolicyDocument=doc)
        arn = iam.create_policy(PolicyName=f"m{i}", PolicyDocument=doc)["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="r", PolicyArn=arn)
        iam.create_instance_profile(InstanceProfileName=f"ip{i}")
        iam.add_role_to_instance_profile(InstanceProfileName=f"ip{i}", RoleName="r")
    aws_emulator.page_size(1)
    assert _pages(amp, "list_workspaces", "workspaces") and all(
        len(p) == 1 for p in _pages(amp, "list_workspaces", "workspaces")
    )
    assert len(_pages(amp, "list_workspaces", "workspaces")) == 2
    names = _pages(amp, "list_rule_groups_namespaces", "ruleGroupsNamespaces", workspaceId=ws)
    assert [[n["name"] for n in p] for p in names] == [["a"], ["b"], ["c"]]
    assert _pages(iam, "list_role_policies", "PolicyNames", RoleName="r") == [
        ["p0"],
        ["p1"],
        ["p2"],
    ]
    attached = _pages(iam, "list_attached_role_policies", "AttachedPolicies", RoleName="r")
    assert [[a["PolicyName"] for a in p] for p in attached] == [["m0"], ["m1"], ["m2"]]
    profiles = _pages(iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName="r")
    assert sorted(p[0]["InstanceProfileName"] for p in profiles) == ["ip0", "ip1", "ip2"]
    assert all(len(p) == 1 for p in profiles)
    role_arn = iam.get_role(RoleName="r")["Role"]["Arn"]
    simulated = _pages(
        iam,
        "simulate_principal_policy",
        "EvaluationResults",
        PolicySourceArn=role_arn,
        ActionNames=["aps:ListWorkspaces", "aps:CreateWorkspace"],
    )
    assert [len(p) for p in simulated] == [1, 1]
    aws_emulator.page_size(None)
    assert len(_pages(iam, "list_role_policies", "PolicyNames", RoleName="r")) == 1
    small = iam.list_role_policies(RoleName="r", MaxItems=2)
    assert small["IsTruncated"] and len(small["PolicyNames"]) == 2


def test_answers_unlike_the_model_are_recorded(aws_emulator: AwsEmulator) -> None:
    aws_emulator.fail("ListWorkspaces", 1, code="NoSuchThing")  # no amp operation sends it
    with pytest.raises(ClientError):
        _no_retry(aws_emulator, "amp").list_workspaces()
    found = aws_emulator.violations()
    assert any("aps:ListWorkspaces" in v and "NoSuchThing" in v for v in found), found
    url = f"{aws_emulator.endpoint}/_emulator/violations"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert json.loads(r.read())["violations"] == found
    aws_emulator.reset()
    assert aws_emulator.violations() == []


def test_control_api_throttles_like_the_python_api(aws_emulator: AwsEmulator) -> None:
    spec = {"kind": "throttle", "operation": "ListWorkspaces", "times": 1, "retry_after": 2}
    req = urllib.request.Request(
        f"{aws_emulator.endpoint}/_emulator/fault", data=json.dumps(spec).encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    with pytest.raises(ClientError) as e:
        _no_retry(aws_emulator, "amp").list_workspaces()
    meta = e.value.response["ResponseMetadata"]
    assert (meta["HTTPStatusCode"], meta["HTTPHeaders"]["retry-after"]) == (429, "2")
