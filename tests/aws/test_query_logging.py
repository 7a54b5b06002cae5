"""``workspace.query_logging``: AMP's query logging configuration (queries that process
more than ``qsp_threshold`` samples are logged to a CloudWatch log group), planned,
created, updated, drift-checked, reported (``QueryLoggingActive``) and deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import AlreadyExists, make_gateway
from ampd.aws.side.side import WORKSPACE_POLL, AwsSide
from ampd.core import Action, ConditionStatus, Health, Kind, ResourceKey, SideResult
from ampd.errors import PermanentError
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass, read_write
from tests.harness.aws_amp import Phase
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, AwsEnv

QL = ResourceKey(Kind.QUERY_LOGGING, "prod")
LOGS = "arn:aws:logs:eu-west-1:123456789012:log-group:amp-queries:*"
OTHER = "arn:aws:logs:eu-west-1:123456789012:log-group:amp-queries-2:*"
OPS = (
    "CreateQueryLoggingConfiguration",
    "UpdateQueryLoggingConfiguration",
    "DeleteQueryLoggingConfiguration",
)


@pytest.fixture(autouse=True)
def _instant(aws_emulator: AwsEmulator) -> None:
    aws_emulator.instant()


def spec(query_logging: dict[str, Any] | None = None, deletion: str = "retain") -> StateSpec:
    workspace: dict[str, Any] = {"alias": "prod-metrics", "deletion": deletion}
    if query_logging is not None:
        workspace["query_logging"] = query_logging
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1", "data_plane_url": DATA_PLANE_URL},
            "workspace": workspace,
        }
    )


def side(tmp_path: Path) -> AwsSide:
    return AwsSide(make_gateway, Store(tmp_path / "ampd.json"))


def writes(em: AwsEmulator) -> list[tuple[str, Any]]:
    return [(r.operation, r.params.get("destinations")) for r in em.requests if r.operation in OPS]


def destination(arn: str, threshold: int) -> list[dict[str, Any]]:
    return [{"cloudWatchLogs": {"logGroupArn": arn}, "filters": {"qspThreshold": threshold}}]


def described(em: AwsEmulator, ws_id: str) -> dict[str, Any]:
    amp = em.client("amp")
    return dict(
        amp.describe_query_logging_configuration(workspaceId=ws_id)["queryLoggingConfiguration"]
    )


def condition(result: SideResult) -> tuple[ConditionStatus, str, str]:
    c = result.condition("QueryLoggingActive")
    assert c is not None, [x.type for x in result.conditions]
    return c.status, c.reason, c.message


def test_created_then_in_sync_then_updated(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    want = {"log_group_arn": LOGS, "qsp_threshold": 1000000}
    first = aws_pass(rec, spec(want), apply=True)
    assert first.workspace is not None
    assert writes(aws_emulator) == [("CreateQueryLoggingConfiguration", destination(LOGS, 1000000))]
    assert condition(first)[:2] == (ConditionStatus.TRUE, "Active")
    live = described(aws_emulator, first.workspace.id)
    assert live["destinations"] == destination(LOGS, 1000000)

    aws_emulator.reset_requests()
    again = aws_pass(rec, spec(want), apply=True, force_read=True)
    assert again.plan.in_sync and writes(aws_emulator) == []

    changed = {"log_group_arn": OTHER, "qsp_threshold": 0}
    updated = aws_pass(rec, spec(changed), apply=True)
    [change] = updated.plan.changes
    assert (change.key, change.action) == (QL, Action.UPDATE)
    assert {d.field for d in change.diffs} == {"log_group_arn", "qsp_threshold"}
    assert writes(aws_emulator) == [("UpdateQueryLoggingConfiguration", destination(OTHER, 0))]
    assert described(aws_emulator, first.workspace.id)["destinations"] == destination(OTHER, 0)


def test_drift_is_shown_per_field_and_corrected(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    want = spec({"log_group_arn": LOGS, "qsp_threshold": 500})
    first = aws_pass(rec, want, apply=True)
    assert first.workspace is not None
    aws_emulator.client("amp").update_query_logging_configuration(
        workspaceId=first.workspace.id, destinations=destination(LOGS, 5)
    )
    aws_emulator.reset_requests()
    planned = aws_pass(rec, want, apply=False, force_read=True)
    [drift] = planned.plan.drift
    assert drift.key == QL and drift.reason == "changed outside ampd"
    assert [(d.field, d.before, d.after) for d in drift.diffs] == [("qsp_threshold", 5, 500)]
    assert writes(aws_emulator) == []
    aws_pass(rec, want, apply=True, force_read=True)
    assert writes(aws_emulator) == [("UpdateQueryLoggingConfiguration", destination(LOGS, 500))]


def test_removed_from_the_state_it_is_deleted_under_deletion_delete(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    want = {"log_group_arn": LOGS, "qsp_threshold": 10}
    first = aws_pass(rec, spec(want, deletion="delete"), apply=True)
    assert first.workspace is not None
    aws_emulator.reset_requests()
    kept = aws_pass(rec, spec(None), apply=True)  # deletion: retain (the default): kept
    assert [s.key for s in kept.plan.skipped] == [QL] and writes(aws_emulator) == []
    gone = aws_pass(rec, spec(None, deletion="delete"), apply=True)
    assert [(c.key, c.action) for c in gone.plan.changes] == [(QL, Action.DELETE)]
    assert writes(aws_emulator) == [("DeleteQueryLoggingConfiguration", None)]
    with pytest.raises(aws_emulator.client("amp").exceptions.ResourceNotFoundException):
        described(aws_emulator, first.workspace.id)
    aws_emulator.reset_requests()
    after = aws_pass(rec, spec(None, deletion="delete"), apply=True, force_read=True)
    assert after.plan.in_sync and writes(aws_emulator) == []


def test_a_failed_configuration_is_reported_with_amps_reason(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    want = spec({"log_group_arn": LOGS, "qsp_threshold": 10})
    first = aws_pass(rec, want, apply=True)
    assert first.workspace is not None
    why = "the log group's resource policy does not allow AMP to deliver"
    with aws_emulator._lock:
        q = aws_emulator._amp.extras.query_logging[first.workspace.id]
        q.phase = Phase("CREATING", 0.0, "CREATION_FAILED", why)
    aws_emulator.reset_requests()
    seen = aws_pass(rec, want, apply=True, force_read=True)
    status, reason, message = condition(seen)
    assert (status, reason) == (ConditionStatus.FALSE, "CreationFailed") and why in message
    assert {s.key: s for s in seen.statuses}[QL].health is Health.DEGRADED
    assert writes(aws_emulator) == []  # ampd wrote these inputs: not again


def test_the_emulator_validates_as_amp_does(aws_emulator: AwsEmulator) -> None:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    # botocore checks the model's patterns and minimums itself: this client does not, so
    # that the emulator's own validation answers
    amp = boto3.client(
        "amp",
        endpoint_url=aws_emulator.endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(parameter_validation=False),
    )
    ws = amp.create_workspace(alias="v")["workspaceId"]
    bad_arn = "arn:aws:logs:eu-west-1:123456789012:log-group:amp"  # no ":*"
    for destinations in (destination(bad_arn, 1), destination(LOGS, -1), []):
        with pytest.raises(amp.exceptions.ValidationException):
            amp.create_query_logging_configuration(workspaceId=ws, destinations=destinations)
    with pytest.raises(amp.exceptions.ResourceNotFoundException):
        amp.update_query_logging_configuration(workspaceId=ws, destinations=destination(LOGS, 1))
    amp.create_query_logging_configuration(workspaceId=ws, destinations=destination(LOGS, 0))
    with pytest.raises(amp.exceptions.ValidationException):  # one per workspace
        amp.create_query_logging_configuration(workspaceId=ws, destinations=destination(LOGS, 0))
    assert aws_emulator.violations() == []


def test_a_configuration_amp_is_still_creating_is_looked_at_again_soon(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    want = spec({"log_group_arn": LOGS, "qsp_threshold": 10})
    aws_pass(rec, spec(None), apply=True)  # the workspace, ACTIVE at once
    aws_emulator.transition_delay(600.0)
    creating = aws_pass(rec, want, apply=True)
    assert condition(creating)[:2] == (ConditionStatus.FALSE, "Creating")
    assert {s.key: s for s in creating.statuses}[QL].health is Health.PROGRESSING
    assert creating.requeue_after == WORKSPACE_POLL
    aws_emulator.reset_requests()
    still = aws_pass(rec, want, apply=True)  # not written again while AMP works on it
    assert still.plan.changes == () and writes(aws_emulator) == []
    assert aws_emulator.calls("DescribeQueryLoggingConfiguration") == 1  # read, not cached


def test_two_hosts_creating_it_at_once_the_loser_reads_it_and_updates_it(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """Host B read "none"; host A created it meanwhile. B's create is refused (AMP holds
    one per workspace): not a permanent failure but "someone created it": B reads it at
    once and, as its state wants another threshold, updates it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = side(tmp_path / "a"), side(tmp_path / "b")
    built = aws_pass(a, spec(None), apply=True)
    assert built.workspace is not None
    ws_id = built.workspace.id
    planned = aws_pass(b, spec({"log_group_arn": LOGS, "qsp_threshold": 20}), apply=False)
    assert [(c.key, c.action) for c in planned.plan.changes] == [(QL, Action.CREATE)]
    aws_pass(a, spec({"log_group_arn": LOGS, "qsp_threshold": 10}), apply=True)
    aws_emulator.reset_requests()

    raced = aws_pass(b, spec({"log_group_arn": LOGS, "qsp_threshold": 20}), apply=True)
    assert writes(aws_emulator) == [("CreateQueryLoggingConfiguration", destination(LOGS, 20))]
    [outcome] = [o for o in raced.outcomes if o.change.key == QL]
    assert not outcome.ok and not outcome.permanent
    assert outcome.message.startswith("already exists"), outcome.message
    assert raced.requeue_after is not None and raced.requeue_after <= 1.0  # at once
    assert described(aws_emulator, ws_id)["destinations"] == destination(LOGS, 10)  # A's

    aws_emulator.reset_requests()
    after = aws_pass(b, spec({"log_group_arn": LOGS, "qsp_threshold": 20}), apply=True)
    [change] = after.plan.changes
    assert (change.key, change.action) == (QL, Action.UPDATE)
    assert [(d.field, d.before, d.after) for d in change.diffs] == [("qsp_threshold", 10, 20)]
    assert writes(aws_emulator) == [("UpdateQueryLoggingConfiguration", destination(LOGS, 20))]
    assert all(o.ok for o in after.outcomes)
    assert described(aws_emulator, ws_id)["destinations"] == destination(LOGS, 20)


def test_the_loser_with_the_same_configuration_writes_nothing_more(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = side(tmp_path / "a"), side(tmp_path / "b")
    want = spec({"log_group_arn": LOGS, "qsp_threshold": 10})
    aws_pass(a, spec(None), apply=True)
    aws_pass(b, want, apply=False)
    aws_pass(a, want, apply=True)
    raced = aws_pass(b, want, apply=True)
    assert [o.permanent for o in raced.outcomes if not o.ok] == [False]
    aws_emulator.reset_requests()
    after = aws_pass(b, want, apply=True)
    assert after.plan.in_sync and writes(aws_emulator) == []
    assert condition(after)[:2] == (ConditionStatus.TRUE, "Active")


def test_a_conflict_on_the_create_is_already_exists_and_a_real_refusal_stays_permanent(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator
) -> None:
    """The gateway: AMP's ConflictException on this create (a configuration that is
    there) is AlreadyExists, as for AMP's other one-per-workspace children; so is the
    ValidationException botocore's model names, once a re-read finds one there. A
    ValidationException with nothing there (a bad log group ARN) stays permanent."""
    gw = read_write(make_gateway("eu-west-1"))
    ws = str(gw.create_workspace("q", {}, "token-q", None)["workspaceId"])
    bad = "arn:aws:logs:eu-west-1:123456789012:log-group:no-star"
    with pytest.raises(PermanentError) as refused:
        gw.create_query_logging(ws, bad, 1)
    assert not isinstance(refused.value, AlreadyExists)
    gw.create_query_logging(ws, LOGS, 1)
    with pytest.raises(AlreadyExists):  # the emulator's ValidationException, then a read
        gw.create_query_logging(ws, LOGS, 2)
    aws_emulator.fail(
        "CreateQueryLoggingConfiguration",
        1,
        status=409,
        code="ConflictException",
        message="A query logging configuration already exists for this workspace",
    )
    with pytest.raises(AlreadyExists):
        gw.create_query_logging(ws, LOGS, 2)
    assert described(aws_emulator, ws)["destinations"] == destination(LOGS, 1)
