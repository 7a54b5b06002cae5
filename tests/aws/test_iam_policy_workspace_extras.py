"""The manager's and the observer's policies are enough, and scoped, for the workspace
configuration's 2026 fields, query logging and the resource policy.

A manager builds them, changes them and deletes them against the emulator; every AWS call
it made is judged (tests/harness/iam_eval.py), as tests/harness/iam_calls.py authorizes
it (the new operations act on the workspace's ARN, as the logging configuration's do),
against the policy ``ampd policy manage`` prints for that state. And the other way round:
of these operations the policy grants only what the passes called, and a state without
the sections grants none of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.plan.arns import Arns
from ampd.aws.plan.policy import PolicyInputs, manage_policy, observe_policy
from ampd.aws.side.side import AwsSide
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import ACCOUNT_ID, AwsEmulator, Recorded
from tests.harness.fixtures_aws import REGION, AwsEnv
from tests.harness.iam_calls import authorizations
from tests.harness.iam_eval import Request, decide

LOGS = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:amp-queries:*"
ON_THE_WORKSPACE = frozenset(
    {
        "DescribeWorkspaceConfiguration",
        "UpdateWorkspaceConfiguration",
        "DescribeQueryLoggingConfiguration",
        "CreateQueryLoggingConfiguration",
        "UpdateQueryLoggingConfiguration",
        "DeleteQueryLoggingConfiguration",
        "DescribeResourcePolicy",
        "PutResourcePolicy",
        "DeleteResourcePolicy",
    }
)


@pytest.fixture(autouse=True)
def _instant(aws_emulator: AwsEmulator) -> None:
    aws_emulator.instant()


def spec(threshold: int, writers: list[str], *, mode: str = "manage") -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": REGION, "mode": mode},
            "workspace": {
                "alias": "prod-metrics",
                "out_of_order_window": "2m",
                "rule_query_offset": "30s",
                "label_set_limits": [{"labels": {"team": "web"}, "max_series": 0}],
                "query_logging": {"log_group_arn": LOGS, "qsp_threshold": threshold},
                "resource_policy": {"writers": writers},
                "deletion": "delete",
            },
        }
    )


def requests(calls: list[Recorded]) -> list[tuple[str, Request]]:
    return [(c.operation, r) for c in calls for r in authorizations(c)]


def granted(policy: dict[str, Any]) -> set[str]:
    """The operations of ON_THE_WORKSPACE that ``policy`` grants."""
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    return {op for op in ON_THE_WORKSPACE if f"aps:{op}" in actions}


def denied(pairs: list[tuple[str, Request]], policy: dict[str, Any]) -> list[str]:
    return [f"{op}: {r}" for op, r in pairs if decide([policy], r) != "allowed"]


def test_the_manager_policy_allows_every_call_and_nothing_on_other_workspaces(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    side = AwsSide(make_gateway, Store(tmp_path / "ampd.json"))
    built = aws_pass(side, spec(10, ["111122223333"]), apply=True)
    assert [o.message for o in built.outcomes if not o.ok] == []
    assert built.workspace is not None
    changed = aws_pass(side, spec(20, ["111122223333", "222233334444"]), apply=True)
    assert [o.message for o in changed.outcomes if not o.ok] == []
    assert changed.plan.changes  # both were written again
    removed = StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": REGION},
            "workspace": {"alias": "prod-metrics", "deletion": "delete"},
        }
    )
    gone = aws_pass(side, removed, apply=True)
    assert len(gone.plan.changes) == 2 and all(o.ok for o in gone.outcomes)
    # the configuration cannot be deleted: AMP keeps it, and ampd stops remembering it
    assert [s.key.kind.value for s in gone.plan.skipped] == ["aws.workspace_configuration"]
    assert aws_pass(side, removed, apply=True).plan.skipped == ()
    calls = requests(aws_emulator.requests)
    assert {op for op, _ in calls} >= ON_THE_WORKSPACE
    arns = Arns.of(REGION, ACCOUNT_ID)
    policy = manage_policy(PolicyInputs(spec(10, ["111122223333"]), arns, built.workspace.id))
    assert denied(calls, policy) == []
    # least privilege: of these operations, only what the passes called is granted ...
    assert granted(policy) == {op for op, _ in calls} & ON_THE_WORKSPACE
    # ... and a state without the sections (nothing to delete) is granted none of them
    bare = StateSpec.model_validate(
        {"version": 1, "stack": "prod", "aws": {"region": REGION}, "workspace": {"alias": "m"}}
    )
    assert granted(manage_policy(PolicyInputs(bare, arns, built.workspace.id))) == set()

    # scoped: the same calls on another workspace are denied
    other = [
        (op, Request(r.action, r.resource.replace(built.workspace.id, "ws-someone-else")))
        for op, r in calls
        if op in ON_THE_WORKSPACE
    ]
    assert len(denied(other, policy)) == len(other)


def test_the_observer_policy_reads_and_never_writes_them() -> None:
    arns = Arns.of(REGION, ACCOUNT_ID)
    ws_arn = arns.workspace("ws-1")
    policy = observe_policy(PolicyInputs(spec(10, ["111122223333"], mode="observe"), arns, "ws-1"))
    for action in (
        "DescribeWorkspaceConfiguration",
        "DescribeQueryLoggingConfiguration",
        "DescribeResourcePolicy",
    ):
        assert decide([policy], Request(f"aps:{action}", ws_arn)) == "allowed", action
    for action in (
        "UpdateWorkspaceConfiguration",
        "CreateQueryLoggingConfiguration",
        "PutResourcePolicy",
        "DeleteResourcePolicy",
    ):
        assert decide([policy], Request(f"aps:{action}", ws_arn)) != "allowed", action


@pytest.mark.parametrize("deletion", ["delete", "retain"])
def test_children_no_longer_named_are_read_and_deleted_only_under_deletion_delete(
    deletion: str,
) -> None:
    """A child ampd made is read and deleted when the state drops it under ``deletion:
    delete`` (``ampd.aws.observe.read_children``): the policy printed for that state must
    grant it. Under ``retain`` nothing is deleted and nothing of it is granted."""
    bare = StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": REGION},
            "workspace": {"alias": "m", "deletion": deletion},
        }
    )
    policy = manage_policy(PolicyInputs(bare, Arns.of(REGION, ACCOUNT_ID), "ws-1"))
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    children = [
        "LoggingConfiguration",
        "QueryLoggingConfiguration",
        "ResourcePolicy",
        "AlertManagerDefinition",
    ]
    for name in children:
        for verb in ("Describe", "Delete"):
            assert (f"aps:{verb}{name}" in actions) is (deletion == "delete"), (verb, name)
        assert not {f"aps:{v}{name}" for v in ("Create", "Update", "Put")} & actions, name
