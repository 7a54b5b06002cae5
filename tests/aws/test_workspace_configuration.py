"""The workspace configuration, whole: retention, the out-of-order window, the rule query
offset and the label set limits are one resource (``aws.workspace_configuration``).

ampd sends only the fields the state file sets, compares only those, shows drift field by
field, and reports AMP's UPDATE_FAILED with its reason whichever field failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.side.side import AwsSide
from ampd.core import Action, ConditionStatus, Health, Kind, ResourceKey
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, AwsEnv

CONFIG = ResourceKey(Kind.WORKSPACE_CONFIGURATION, "prod")
LIMITS = [
    {"labels": {"team": "web"}, "max_series": 50000},
    {"labels": {"team": "batch", "env": "dev"}, "max_series": 0},
]


@pytest.fixture(autouse=True)
def _instant(aws_emulator: AwsEmulator) -> None:
    aws_emulator.instant()


def spec(**workspace: Any) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1", "data_plane_url": DATA_PLANE_URL},
            "workspace": {"alias": "prod-metrics", **workspace},
        }
    )


def side(tmp_path: Path) -> AwsSide:
    return AwsSide(make_gateway, Store(tmp_path / "ampd.json"))


def config_updates(em: AwsEmulator) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.params.items() if k not in ("query", "clientToken")}
        for r in em.requests
        if r.operation == "UpdateWorkspaceConfiguration"
    ]


def described(em: AwsEmulator, ws_id: str) -> dict[str, Any]:
    amp = em.client("amp")
    return dict(amp.describe_workspace_configuration(workspaceId=ws_id)["workspaceConfiguration"])


def test_every_field_is_sent_once_and_then_in_sync(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    want = spec(
        retention_days=90,
        out_of_order_window="2m",
        rule_query_offset="30s",
        label_set_limits=LIMITS,
    )
    rec = side(tmp_path)
    first = aws_pass(rec, want, apply=True)
    assert first.workspace is not None
    assert config_updates(aws_emulator) == [
        {
            "retentionPeriodInDays": 90,
            "outOfOrderTimeWindowInSeconds": 120,
            "ruleQueryOffsetInSeconds": 30,
            "limitsPerLabelSet": [
                {"labelSet": {"team": "web"}, "limits": {"maxSeries": 50000}},
                {"labelSet": {"team": "batch", "env": "dev"}, "limits": {"maxSeries": 0}},
            ],
        }
    ]
    live = described(aws_emulator, first.workspace.id)
    assert (live["outOfOrderTimeWindowInSeconds"], live["ruleQueryOffsetInSeconds"]) == (120, 30)
    c = first.condition("WorkspaceConfigurationActive")
    assert c is not None and c.status is ConditionStatus.TRUE

    aws_emulator.reset_requests()
    again = aws_pass(rec, want, apply=True, force_read=True)
    assert again.plan.in_sync, again.plan
    assert config_updates(aws_emulator) == []


def test_only_the_fields_the_state_sets_are_sent_and_compared(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(rule_query_offset="1m"), apply=True)
    assert first.workspace is not None
    assert config_updates(aws_emulator) == [{"ruleQueryOffsetInSeconds": 60}]
    # AMP's retention (its default) and its empty label set list are not the state's
    # business: nothing to change
    aws_emulator.reset_requests()
    again = aws_pass(rec, spec(rule_query_offset="1m"), apply=True, force_read=True)
    assert again.plan.in_sync and config_updates(aws_emulator) == []

    # only the field that changed is sent
    aws_pass(rec, spec(rule_query_offset="1m", out_of_order_window="5m"), apply=True)
    assert config_updates(aws_emulator) == [{"outOfOrderTimeWindowInSeconds": 300}]
    live = described(aws_emulator, first.workspace.id)
    assert live["ruleQueryOffsetInSeconds"] == 60 and live["outOfOrderTimeWindowInSeconds"] == 300


def test_label_set_limits_set_to_none_remove_amps(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(label_set_limits=LIMITS[:1]), apply=True)
    assert first.workspace is not None
    aws_emulator.reset_requests()
    aws_pass(rec, spec(), apply=True)  # left out: AMP's limits are not looked at
    assert config_updates(aws_emulator) == []
    aws_pass(rec, spec(label_set_limits=[]), apply=True)  # set to none: removed
    assert config_updates(aws_emulator) == [{"limitsPerLabelSet": []}]
    assert described(aws_emulator, first.workspace.id)["limitsPerLabelSet"] == []


def test_drift_shows_field_by_field_and_is_corrected(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    want = spec(retention_days=90, out_of_order_window="2m", label_set_limits=LIMITS[:1])
    rec = side(tmp_path)
    first = aws_pass(rec, want, apply=True)
    assert first.workspace is not None
    aws_emulator.client("amp").update_workspace_configuration(
        workspaceId=first.workspace.id,
        outOfOrderTimeWindowInSeconds=10,
        limitsPerLabelSet=[{"labelSet": {"team": "web"}, "limits": {"maxSeries": 7}}],
    )
    aws_emulator.reset_requests()
    planned = aws_pass(rec, want, apply=False, force_read=True)
    [drift] = planned.plan.drift
    assert (drift.key, drift.action, drift.reason) == (
        CONFIG,
        Action.UPDATE,
        "changed outside ampd",
    )
    diffs = {d.field: (d.before, d.after) for d in drift.diffs}
    assert diffs == {
        "out_of_order_seconds": (10, 120),
        "label_set_limits": (
            [{"labels": {"team": "web"}, "max_series": 7}],
            [{"labels": {"team": "web"}, "max_series": 50000}],
        ),
    }
    assert config_updates(aws_emulator) == []  # a plan writes nothing

    aws_pass(rec, want, apply=True, force_read=True)  # drift: correct (the default)
    assert config_updates(aws_emulator) == [
        {
            "outOfOrderTimeWindowInSeconds": 120,
            "limitsPerLabelSet": [{"labelSet": {"team": "web"}, "limits": {"maxSeries": 50000}}],
        }
    ]


def test_a_failed_update_of_the_new_fields_is_reported_with_amps_reason(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    why = "limitsPerLabelSet: the account's active series quota is lower"
    rec = side(tmp_path)
    aws_pass(rec, spec(rule_query_offset="30s"), apply=True)
    aws_emulator.fail_next_configuration_update(why)
    failed = aws_pass(rec, spec(rule_query_offset="30s", label_set_limits=LIMITS), apply=True)
    c = failed.condition("WorkspaceConfigurationActive")
    assert c is not None
    assert (c.status, c.reason) == (ConditionStatus.FALSE, "UpdateFailed") and why in c.message
    assert {s.key: s for s in failed.statuses}[CONFIG].health is Health.DEGRADED

    aws_emulator.reset_requests()  # the same inputs: not written again
    again = aws_pass(
        rec, spec(rule_query_offset="30s", label_set_limits=LIMITS), apply=True, force_read=True
    )
    assert again.plan.changes == () and config_updates(aws_emulator) == []
    fixed = aws_pass(rec, spec(rule_query_offset="30s", label_set_limits=LIMITS[:1]), apply=True)
    # what differs is sent: the offset AMP kept is the state's already
    assert config_updates(aws_emulator) == [
        {"limitsPerLabelSet": [{"labelSet": {"team": "web"}, "limits": {"maxSeries": 50000}}]}
    ]
    c = fixed.condition("WorkspaceConfigurationActive")
    assert c is not None and c.status is ConditionStatus.TRUE
