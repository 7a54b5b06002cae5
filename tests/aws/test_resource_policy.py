"""``workspace.resource_policy``: who else may remote-write into the workspace.

ampd renders the policy (the writers may ``aps:RemoteWrite`` into this workspace, and
nothing else), writes it with the ``revisionId`` it read, and never overwrites an edit
made since: AMP refuses the stale revision, the outcome and ``ResourcePolicyInSync`` name
the concurrent edit, and the next pass reads again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import AwsReader
from ampd.aws.plan.configuration import resource_policy_document
from ampd.aws.side.side import AwsSide
from ampd.core import Action, ConditionStatus, Kind, ResourceKey, SideResult
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, AwsEnv

RP = ResourceKey(Kind.RESOURCE_POLICY, "prod")
ORG = "o-abcdefghij/r-ab12/ou-ab12-11111111/"
OPS = ("PutResourcePolicy", "DeleteResourcePolicy")
WS_ARN = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"


@pytest.fixture(autouse=True)
def _instant(request: pytest.FixtureRequest) -> None:
    if "aws_emulator" in request.fixturenames:
        request.getfixturevalue("aws_emulator").instant()


def spec(writers: list[str] | None, deletion: str = "retain") -> StateSpec:
    workspace: dict[str, Any] = {"alias": "prod-metrics", "deletion": deletion}
    if writers is not None:
        workspace["resource_policy"] = {"writers": writers}
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1", "data_plane_url": DATA_PLANE_URL},
            "workspace": workspace,
        }
    )


class EditedAfterRead(AwsReader):
    """Someone else edits the policy right after ampd read it (once)."""

    edit: dict[str, Any] | None = None

    def describe_resource_policy(self, workspace_id: str) -> dict[str, Any] | None:
        found = super().describe_resource_policy(workspace_id)
        edit, EditedAfterRead.edit = EditedAfterRead.edit, None
        if edit is not None and found is not None:
            self._amp.put_resource_policy(
                workspaceId=workspace_id,
                policyDocument=json.dumps(edit),
                revisionId=str(found["revisionId"]),
            )
        return found


def side(tmp_path: Path) -> AwsSide:
    return AwsSide(
        lambda region, endpoint: EditedAfterRead(region, endpoint_url=endpoint),
        Store(tmp_path / "ampd.json"),
    )


def writes(em: AwsEmulator) -> list[tuple[str, str | None]]:
    """Each write and the revision it named (in the body of a put, the query of a delete)."""
    return [
        (r.operation, r.params.get("revisionId") or r.params.get("query", {}).get("revisionId"))
        for r in em.requests
        if r.operation in OPS
    ]


def live(em: AwsEmulator, ws_id: str) -> dict[str, Any]:
    return dict(em.client("amp").describe_resource_policy(workspaceId=ws_id))


def in_sync(result: SideResult) -> tuple[ConditionStatus, str, str]:
    c = result.condition("ResourcePolicyInSync")
    assert c is not None, [x.type for x in result.conditions]
    return c.status, c.reason, c.message


def test_the_document_grants_remote_write_to_the_writers_only() -> None:
    doc = resource_policy_document(spec(["222233334444", ORG, "111122223333"]), WS_ARN)
    assert doc == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AmpdRemoteWriteAccounts",
                "Effect": "Allow",
                "Principal": {
                    "AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::222233334444:root"]
                },
                "Action": "aps:RemoteWrite",
                "Resource": WS_ARN,
            },
            {
                "Sid": "AmpdRemoteWriteOrganizationPaths",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "aps:RemoteWrite",
                "Resource": WS_ARN,
                "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [f"{ORG}*"]}},
            },
        ],
    }
    china = resource_policy_document(
        spec(["111122223333"]), "arn:aws-cn:aps:cn-north-1:123456789012:workspace/ws-1"
    )
    assert china is not None
    assert china["Statement"][0]["Principal"] == {"AWS": ["arn:aws-cn:iam::111122223333:root"]}
    assert resource_policy_document(spec(None), WS_ARN) is None


def test_written_with_the_revision_read_then_in_sync(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(["111122223333"]), apply=True)
    assert first.workspace is not None
    ws_id = first.workspace.id
    # none to read: the put says so, and AMP would refuse it had one been made meanwhile
    assert writes(aws_emulator) == [("PutResourcePolicy", "NO_POLICY")]
    policy = live(aws_emulator, ws_id)
    document = json.loads(policy["policyDocument"])
    assert document["Statement"][0]["Resource"] == first.workspace.arn
    assert in_sync(first)[:2] == (ConditionStatus.TRUE, "Active")

    aws_emulator.reset_requests()
    again = aws_pass(rec, spec(["111122223333"]), apply=True, force_read=True)
    assert again.plan.in_sync and writes(aws_emulator) == []

    revision = live(aws_emulator, ws_id)["revisionId"]
    aws_pass(rec, spec(["111122223333", ORG]), apply=True)
    assert writes(aws_emulator) == [("PutResourcePolicy", revision)]
    assert len(json.loads(live(aws_emulator, ws_id)["policyDocument"])["Statement"]) == 2


def test_a_concurrent_edit_is_reported_never_overwritten_and_read_again(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(["111122223333"]), apply=True)
    assert first.workspace is not None
    ws_id = first.workspace.id
    theirs = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
                "Action": "aps:RemoteWrite",
                "Resource": first.workspace.arn,
            }
        ],
    }
    EditedAfterRead.edit = theirs
    raced = aws_pass(rec, spec(["222233334444"]), apply=True)
    [outcome] = [o for o in raced.outcomes if o.change.key == RP]
    assert not outcome.ok and outcome.message.startswith("edited concurrently"), outcome
    status, reason, message = in_sync(raced)
    assert (status, reason) == (ConditionStatus.FALSE, "ConcurrentEdit")
    assert "ConflictException" in message
    assert json.loads(live(aws_emulator, ws_id)["policyDocument"]) == theirs  # not overwritten
    assert raced.requeue_after is not None and raced.requeue_after <= 1.0  # at once

    # the next pass reads their edit and its revision, and writes over it knowingly
    revision = live(aws_emulator, ws_id)["revisionId"]
    aws_emulator.reset_requests()
    after = aws_pass(rec, spec(["222233334444"]), apply=True)
    [change] = after.plan.changes
    assert change.key == RP and change.action is Action.UPDATE
    assert change.diffs[0].before == theirs
    assert writes(aws_emulator) == [("PutResourcePolicy", revision)]
    assert in_sync(after)[0] is ConditionStatus.TRUE


def test_observe_mode_reports_a_policy_out_of_sync_and_writes_nothing(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    aws_pass(rec, spec(["111122223333"]), apply=True)
    observe = spec(["222233334444"]).model_copy(
        update={"aws": spec(None).aws_or_default.model_copy(update={"mode": "observe"})}
    )
    aws_emulator.reset_requests()
    seen = aws_pass(rec, observe, apply=True)
    assert [d.key for d in seen.plan.drift] == [RP] and writes(aws_emulator) == []
    assert in_sync(seen)[:2] == (ConditionStatus.FALSE, "OutOfSync")


def test_removed_from_the_state_it_is_deleted_with_its_revision(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(["111122223333"], deletion="delete"), apply=True)
    assert first.workspace is not None
    revision = live(aws_emulator, first.workspace.id)["revisionId"]
    aws_emulator.reset_requests()
    gone = aws_pass(rec, spec(None, deletion="delete"), apply=True)
    assert [(c.key, c.action) for c in gone.plan.changes] == [(RP, Action.DELETE)]
    assert writes(aws_emulator) == [("DeleteResourcePolicy", revision)]
    amp = aws_emulator.client("amp")
    with pytest.raises(amp.exceptions.ResourceNotFoundException):
        amp.describe_resource_policy(workspaceId=first.workspace.id)


def test_the_emulator_holds_revisions_as_amp_does(aws_emulator: AwsEmulator) -> None:
    amp = aws_emulator.client("amp")
    ws = amp.create_workspace(alias="r")["workspaceId"]
    doc = json.dumps({"Version": "2012-10-17", "Statement": []})
    with pytest.raises(amp.exceptions.ResourceNotFoundException):
        amp.describe_resource_policy(workspaceId=ws)
    with pytest.raises(amp.exceptions.ValidationException):
        amp.put_resource_policy(workspaceId=ws, policyDocument="not json")
    first = amp.put_resource_policy(workspaceId=ws, policyDocument=doc)
    assert first["policyStatus"] == "CREATING"
    second = amp.put_resource_policy(
        workspaceId=ws, policyDocument=doc, revisionId=first["revisionId"]
    )
    assert second["policyStatus"] == "UPDATING" and second["revisionId"] != first["revisionId"]
    for call in (
        lambda: amp.put_resource_policy(
            workspaceId=ws, policyDocument=doc, revisionId=first["revisionId"]
        ),
        lambda: amp.delete_resource_policy(workspaceId=ws, revisionId=first["revisionId"]),
    ):
        with pytest.raises(amp.exceptions.ConflictException):
            call()
    assert amp.describe_resource_policy(workspaceId=ws)["revisionId"] == second["revisionId"]
    amp.delete_resource_policy(workspaceId=ws, revisionId=second["revisionId"])
    with pytest.raises(amp.exceptions.ResourceNotFoundException):
        amp.describe_resource_policy(workspaceId=ws)
    assert aws_emulator.violations() == []


def test_a_policy_amp_is_still_updating_is_waited_for(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    aws_pass(rec, spec(["111122223333"]), apply=True)
    aws_emulator.transition_delay(600.0)
    updating = aws_pass(rec, spec(["222233334444"]), apply=True)
    assert in_sync(updating)[:2] == (ConditionStatus.FALSE, "Updating")
    aws_emulator.reset_requests()
    still = aws_pass(rec, spec(["222233334444"]), apply=True)
    assert still.plan.changes == () and writes(aws_emulator) == []


def test_two_writers_that_both_read_no_policy_never_clobber_each_other(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """Host B read "no policy"; host A wrote one meanwhile. B's put names ``NO_POLICY``,
    so AMP refuses it (ConflictException): A's policy stands, B's outcome is a concurrent
    edit to read again at once (not a permanent failure), and B's next pass plans against
    A's policy and writes over it knowingly, with A's revision. (A put without a
    revision -- what ampd sent before -- is written by AMP regardless: A's was lost.)"""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = side(tmp_path / "a"), side(tmp_path / "b")
    built = aws_pass(a, spec(None), apply=True)  # the workspace, with no policy yet
    assert built.workspace is not None
    ws_id = built.workspace.id
    planned = aws_pass(b, spec(["222233334444"]), apply=False)  # B reads: none
    assert [(c.key, c.action) for c in planned.plan.changes] == [(RP, Action.CREATE)]
    aws_pass(a, spec(["111122223333"]), apply=True)
    theirs = live(aws_emulator, ws_id)
    aws_emulator.reset_requests()

    raced = aws_pass(b, spec(["222233334444"]), apply=True)
    assert writes(aws_emulator) == [("PutResourcePolicy", "NO_POLICY")]
    [outcome] = [o for o in raced.outcomes if o.change.key == RP]
    assert not outcome.ok and not outcome.permanent
    assert outcome.message.startswith("edited concurrently"), outcome.message
    assert in_sync(raced)[:2] == (ConditionStatus.FALSE, "ConcurrentEdit")
    assert raced.requeue_after is not None and raced.requeue_after <= 1.0
    assert live(aws_emulator, ws_id) == theirs  # A's policy, as A wrote it

    aws_emulator.reset_requests()
    after = aws_pass(b, spec(["222233334444"]), apply=True)
    [change] = after.plan.changes
    assert (change.key, change.action) == (RP, Action.UPDATE)
    assert change.diffs[0].before == json.loads(theirs["policyDocument"])
    assert writes(aws_emulator) == [("PutResourcePolicy", theirs["revisionId"])]
    assert in_sync(after)[0] is ConditionStatus.TRUE


def test_two_writers_with_the_same_policy_converge_without_a_second_write(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """The fleet case: both hosts want the same policy. The loser reads the winner's
    and finds it in sync: nothing is written again."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = side(tmp_path / "a"), side(tmp_path / "b")
    aws_pass(a, spec(None), apply=True)
    aws_pass(b, spec(["111122223333"]), apply=False)
    aws_pass(a, spec(["111122223333"]), apply=True)
    raced = aws_pass(b, spec(["111122223333"]), apply=True)
    assert [o.ok for o in raced.outcomes if o.change.key == RP] == [False]
    aws_emulator.reset_requests()
    after = aws_pass(b, spec(["111122223333"]), apply=True)
    assert after.plan.in_sync and writes(aws_emulator) == []
    assert in_sync(after)[0] is ConditionStatus.TRUE


def test_the_emulator_refuses_no_policy_once_there_is_one(aws_emulator: AwsEmulator) -> None:
    """``revisionId: NO_POLICY`` creates the first policy and is refused after it (409,
    held to botocore's model); no revision at all writes regardless, as AMP documents."""
    amp = aws_emulator.client("amp")
    ws = amp.create_workspace(alias="n")["workspaceId"]
    doc = json.dumps({"Version": "2012-10-17", "Statement": []})
    first = amp.put_resource_policy(workspaceId=ws, policyDocument=doc, revisionId="NO_POLICY")
    assert first["policyStatus"] == "CREATING"
    with pytest.raises(amp.exceptions.ConflictException):
        amp.put_resource_policy(workspaceId=ws, policyDocument=doc, revisionId="NO_POLICY")
    assert amp.describe_resource_policy(workspaceId=ws)["revisionId"] == first["revisionId"]
    blind = amp.put_resource_policy(workspaceId=ws, policyDocument=doc)
    assert blind["revisionId"] != first["revisionId"]
    assert aws_emulator.violations() == []
