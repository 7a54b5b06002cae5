"""What a pass does when AWS answers that a resource is gone, or already there (#24).

Two hosts of one stack, or a host and an operator, race: a pass plans from what its
cache holds, and AWS answers the write with 404 (deleted outside ampd since it was read)
or with "already exists" (created by the other writer). The pass forgets what it
remembered of that resource and passes again at once; the next pass plans from what AWS
holds. Nothing is remembered as a failure on those inputs, so nothing stays blocked.

The races are real: a plan pass (``apply=False``) fills the reconciler's cache, the world
changes with a plain boto3 client, and the next applying pass plans from the cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.side.side import AwsSide
from ampd.core import ConditionStatus, Health, Kind, ResourceKey, SideResult
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, EC2_TRUST, AwsEnv

RULES = "groups:\n  - name: node\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n"
RULES_V2 = RULES.replace("sum(up)", "sum by (job) (up)")
ALERTMANAGER = "alertmanager_config: |\n  route:\n    receiver: a\n  receivers:\n    - name: a\n"
ALERTMANAGER_V2 = ALERTMANAGER.replace("receiver: a", "receiver: b").replace("name: a", "name: b")
LOGS = "arn:aws:logs:eu-west-1:123456789012:log-group:amp:*"
LOGS_V2 = "arn:aws:logs:eu-west-1:123456789012:log-group:amp-v2:*"
RG = ResourceKey(Kind.RULE_GROUP, "node")
AM = ResourceKey(Kind.ALERTMANAGER, "prod")
LOGGING = ResourceKey(Kind.LOGGING, "prod")
ROLE = ResourceKey(Kind.IAM_ROLE, "ampd-writer")


@pytest.fixture(autouse=True)
def _instant(request: pytest.FixtureRequest) -> None:
    """These tests are about what a pass decides, not about AWS's transitions."""
    if "aws_emulator" in request.fixturenames:
        request.getfixturevalue("aws_emulator").instant()


def spec(
    tmp_path: Path, *, rules: str = RULES, am: str = ALERTMANAGER, logs: str = LOGS
) -> StateSpec:
    (tmp_path / "node.yml").write_text(rules)
    (tmp_path / "am.yml").write_text(am)
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1", "data_plane_url": DATA_PLANE_URL},
            "workspace": {
                "alias": "prod-metrics",
                "logging": {"log_group_arn": logs},
                "rule_groups": [{"name": "node", "file": str(tmp_path / "node.yml")}],
                "alertmanager": {"file": str(tmp_path / "am.yml")},
            },
            "iam": {"writer": {}},
        }
    )


def side(tmp_path: Path, name: str = "ampd.json") -> AwsSide:
    return AwsSide(make_gateway, Store(tmp_path / name))


def failed(result: SideResult) -> list[str]:
    return [f"{o.change.key}: {o.message}" for o in result.outcomes if not o.ok]


def status(result: SideResult, key: ResourceKey) -> Any:
    return {s.key: s for s in result.statuses}[key]


def ws_id(result: SideResult) -> str:
    assert result.workspace is not None
    return result.workspace.id


Delete = Callable[[Any, str], Any]  # (a boto3 amp client, the workspace id)
CHANGES: dict[ResourceKey, tuple[dict[str, str], Delete, str]] = {
    # resource: (the state file's change that makes ampd write it, how it is deleted)
    RG: (
        {"rules": RULES_V2},
        lambda amp, ws: amp.delete_rule_groups_namespace(workspaceId=ws, name="node"),
        "PutRuleGroupsNamespace",
    ),
    AM: (
        {"am": ALERTMANAGER_V2},
        lambda amp, ws: amp.delete_alert_manager_definition(workspaceId=ws),
        "PutAlertManagerDefinition",
    ),
    LOGGING: (
        {"logs": LOGS_V2},
        lambda amp, ws: amp.delete_logging_configuration(workspaceId=ws),
        "UpdateLoggingConfiguration",
    ),
}


@pytest.mark.parametrize("key", list(CHANGES), ids=str)
def test_deleted_outside_ampd_while_cached_is_recreated(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, key: ResourceKey
) -> None:
    change, delete, write = CHANGES[key]
    (tmp_path / "a").mkdir()
    first = aws_pass(side(tmp_path / "a"), spec(tmp_path), apply=True)  # another host
    assert failed(first) == []
    ws = ws_id(first)
    # the host's reconciler reads (a plan pass) while the state file already asks for more
    rec = side(tmp_path)
    wanted = spec(tmp_path, **change)
    planned = aws_pass(rec, wanted, apply=False)
    assert key in {c.key for c in planned.plan.changes}
    delete(aws_emulator.client("amp"), ws)  # meanwhile, someone deletes it

    aws_emulator.reset_requests()
    second = aws_pass(rec, wanted, apply=True)  # plans from its cache: writes, finds it gone
    assert aws_emulator.calls(write) == 1
    gone = status(second, key)
    assert gone.health is Health.PROGRESSING
    assert "deleted outside ampd" in gone.message and "recreated" in gone.message
    assert second.requeue_after == 0.0  # at once

    third = aws_pass(rec, wanted, apply=True)  # reads it again: created
    assert failed(third) == [], failed(third)
    assert {c.key: c.action.value for c in third.plan.changes} == {key: "create"}
    assert status(third, key).health is Health.HEALTHY
    fourth = aws_pass(rec, wanted, apply=True, force_read=True)
    assert fourth.plan.in_sync, fourth.plan
    amp = aws_emulator.client("amp")
    if key is RG:
        got = amp.describe_rule_groups_namespace(workspaceId=ws, name="node")
        assert got["ruleGroupsNamespace"]["data"] == RULES_V2.encode()
    elif key is AM:
        got = amp.describe_alert_manager_definition(workspaceId=ws)
        assert got["alertManagerDefinition"]["data"] == ALERTMANAGER_V2.encode()
    else:
        got = amp.describe_logging_configuration(workspaceId=ws)
        assert got["loggingConfiguration"]["logGroupArn"] == LOGS_V2


def test_created_concurrently_by_another_host_converges(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """Host B planned against an empty account; host A built everything meanwhile. B's
    creates answer "already exists" (EntityAlreadyExists, ConflictException): B reads
    again and finds all of it its stack's, in sync."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    b = side(tmp_path / "b")
    planned = aws_pass(b, spec(tmp_path), apply=False)
    assert ROLE in {c.key for c in planned.plan.changes}
    a = aws_pass(side(tmp_path / "a"), spec(tmp_path), apply=True)
    assert failed(a) == []

    second = aws_pass(b, spec(tmp_path), apply=True)
    stale = {o.change.key for o in second.outcomes if not o.ok}
    assert ROLE in stale
    for o in second.outcomes:
        if not o.ok:  # the role: already there; what hangs off it waits for it
            assert "already exists" in o.message or "waiting for aws.iam_role" in o.message
    assert second.requeue_after == 0.0
    assert ws_id(second) == ws_id(a)  # the same workspace (one client token per stack)

    aws_emulator.reset_requests()
    third = aws_pass(b, spec(tmp_path), apply=True)
    assert failed(third) == [], failed(third)
    assert third.plan.changes == ()
    assert aws_emulator.writes() == []
    assert third.condition("IamReady").status is ConditionStatus.TRUE  # type: ignore[union-attr]


def test_a_foreign_role_created_concurrently_is_refused_not_taken_over(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    planned = aws_pass(rec, spec(tmp_path), apply=False)
    assert ROLE in {c.key for c in planned.plan.changes}
    iam = aws_emulator.client("iam")
    iam.create_role(RoleName="ampd-writer", AssumeRolePolicyDocument=json.dumps(EC2_TRUST))

    second = aws_pass(rec, spec(tmp_path), apply=True)
    role_outcomes = [o for o in second.outcomes if o.change.key == ROLE]
    assert [o.ok for o in role_outcomes] == [False]
    assert "already exists" in role_outcomes[0].message

    aws_emulator.reset_requests()
    third = aws_pass(rec, spec(tmp_path), apply=True)
    assert ROLE not in {c.key for c in third.plan.changes}
    assert any(s.key == ROLE for s in third.plan.skipped)
    owned = third.condition("IamOwned")
    assert owned is not None and owned.status is ConditionStatus.FALSE
    touched = [r for r in aws_emulator.writes() if "ampd-writer" in json.dumps(r.params)]
    assert [r.operation for r in touched if r.operation.endswith("Role")] == []
    assert iam.list_role_tags(RoleName="ampd-writer")["Tags"] == []


def test_a_workspace_aws_is_deleting_is_neither_written_nor_used(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """DeleteWorkspace answers 202 DELETING; the workspace stays listed a while."""
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path), apply=True)
    assert failed(first) == []
    old = ws_id(first)
    aws_emulator.transition_delay(600.0)  # it stays DELETING for the rest of the test
    aws_emulator.client("amp").delete_workspace(workspaceId=old)
    store = Store(tmp_path / "ampd.json")
    assert "aws.workspace/prod" in store.load().applied

    # The state file drops the workspace section: the workspace AWS is deleting is
    # neither kept (deletion: retain) nor deleted again; ampd forgets it.
    aws_emulator.reset_requests()
    dropped = aws_pass(rec, spec(tmp_path).model_copy(update={"workspace": None}), apply=True)
    assert [x for x in dropped.plan.skipped if x.key.kind is Kind.WORKSPACE] == []
    assert [c for c in dropped.plan.changes if c.key.kind is Kind.WORKSPACE] == []
    assert aws_emulator.calls("DeleteWorkspace") == 0
    assert "aws.workspace/prod" not in store.load().applied

    # Asked for again: a new workspace; nothing is written to the one being deleted.
    aws_emulator.reset_requests()
    again = aws_pass(rec, spec(tmp_path), apply=True)
    assert failed(again) == []
    assert ws_id(again) != old
    assert [r.operation for r in aws_emulator.writes() if old in r.path] == []
    assert aws_emulator.calls("CreateWorkspace") == 1


def test_a_workspace_deleted_outside_ampd_while_cached_is_created_again(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path), apply=True)
    assert failed(first) == []
    old = ws_id(first)
    base = spec(tmp_path)
    assert base.workspace is not None
    alias = base.workspace.model_copy(update={"alias": "prod-metrics-2"})
    renamed = base.model_copy(update={"workspace": alias})
    planned = aws_pass(rec, renamed, apply=False)  # reads it: an alias update is planned
    assert [c.action.value for c in planned.plan.changes] == ["update"]
    aws_emulator.client("amp").delete_workspace(workspaceId=old)  # gone at once here

    second = aws_pass(rec, renamed, apply=True)
    assert aws_emulator.calls("UpdateWorkspaceAlias") == 1
    ws_status = status(second, ResourceKey(Kind.WORKSPACE, "prod"))
    assert "deleted outside ampd" in ws_status.message
    assert second.requeue_after == 0.0

    third = aws_pass(rec, renamed, apply=True)
    assert failed(third) == [], failed(third)
    assert ws_id(third) != old
    assert aws_emulator.calls("UpdateWorkspaceAlias") == 1  # not written to the gone one again
    assert aws_emulator.calls("CreateWorkspace") == 2


def test_a_read_throttled_with_retry_after_waits_at_least_that_long(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """A describe AWS throttles with ``Retry-After: 120`` is not read again sooner: the
    pass's requeue is at least 120 s (before, a throttled read was retried on the book's
    own 5 s base, jittered down to 2.5 s, whatever AWS asked for)."""
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path), apply=True)
    assert failed(first) == []
    aws_emulator.throttle("DescribeRuleGroupsNamespace", 1, retry_after=120)
    second = aws_pass(rec, spec(tmp_path), apply=True, force_read=True)
    assert aws_emulator.calls("DescribeRuleGroupsNamespace") >= 1
    assert "ThrottlingException" in status(second, RG).message
    assert second.requeue_after is not None and 120.0 <= second.requeue_after <= 300.0
