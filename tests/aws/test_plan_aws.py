"""The AWS plan is a pure function: tables of desired / live / last-applied -> Plan."""

from __future__ import annotations

from typing import Any

import pytest

from ampd.aws.model import (
    Desired,
    Live,
    Policy,
    Unreadable,
    ampd_tags,
    canonical,
    fingerprint,
    parse_key,
)
from ampd.aws.plan.desired import (
    client_token,
    desired_iam,
    desired_workspace,
    desired_workspace_children,
)
from ampd.aws.plan.resources import plan_resources
from ampd.core import Action, Kind, ResourceKey
from ampd.spec.models import StateSpec

RG = ResourceKey(Kind.RULE_GROUP, "node")
WS = ResourceKey(Kind.WORKSPACE, "prod")
OURS = ampd_tags("prod")
THEIRS = ampd_tags("other")
DESIRED = Desired(RG, {"data": "groups: []\n", "tags": OURS})
APPLIED = {str(RG): fingerprint(DESIRED)}


def live(data: str = "groups: []\n", tags: dict[str, str] | None = None) -> Live:
    t = OURS if tags is None else tags
    return Live(RG, {"data": data, "tags": t}, t)


MANAGE = Policy("prod")
REPORT = Policy("prod", drift="report")
OBSERVE = Policy("prod", mode="observe")
DELETE = Policy("prod", deletion="delete")

# (name, desired, live, applied, policy, expected changes, expected drift, skipped count)
CASES: list[tuple[str, Desired, Any, dict[str, str], Policy, list[Action], list[Action], int]] = [
    ("absent -> create", DESIRED, None, {}, MANAGE, [Action.CREATE], [], 0),
    ("in sync -> nothing", DESIRED, live(), APPLIED, MANAGE, [], [], 0),
    ("new desired data -> update", DESIRED, live("old"), {}, MANAGE, [Action.UPDATE], [], 0),
    (
        "live edited -> drift corrected",
        DESIRED,
        live("x"),
        APPLIED,
        MANAGE,
        [Action.UPDATE],
        [Action.UPDATE],
        0,
    ),
    (
        "live edited, report -> drift only",
        DESIRED,
        live("x"),
        APPLIED,
        REPORT,
        [],
        [Action.UPDATE],
        0,
    ),
    (
        "deleted outside -> recreate + drift",
        DESIRED,
        None,
        APPLIED,
        MANAGE,
        [Action.CREATE],
        [Action.CREATE],
        0,
    ),
    ("deleted outside, report", DESIRED, None, APPLIED, REPORT, [], [Action.CREATE], 0),
    (
        "observe: desired change is reported",
        DESIRED,
        live("old"),
        {},
        OBSERVE,
        [],
        [Action.UPDATE],
        0,
    ),
    ("observe: missing is reported", DESIRED, None, {}, OBSERVE, [], [Action.CREATE], 0),
    ("other stack's resource -> left alone", DESIRED, live("x", THEIRS), {}, MANAGE, [], [], 1),
    (
        "unreadable -> nothing planned",
        DESIRED,
        Unreadable(RG, "AccessDenied"),
        {},
        MANAGE,
        [],
        [],
        0,
    ),
    (
        "should not exist, ours -> delete",
        Desired(RG, present=False),
        live(),
        {},
        MANAGE,
        [Action.DELETE],
        [],
        0,
    ),
    (
        "should not exist, not ours -> kept",
        Desired(RG, present=False),
        live(tags={}),
        {},
        MANAGE,
        [],
        [],
        1,
    ),
    (
        "should not exist, absent -> nothing",
        Desired(RG, present=False),
        None,
        {},
        MANAGE,
        [],
        [],
        0,
    ),
    (
        "manage: false -> skipped",
        Desired(RG, {"data": "a"}, managed=False, note="x"),
        None,
        {},
        MANAGE,
        [],
        [],
        1,
    ),
]


@pytest.mark.parametrize(
    ("desired", "observed", "applied", "policy", "changes", "drift", "skipped"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan_table(
    desired: Desired,
    observed: Any,
    applied: dict[str, str],
    policy: Policy,
    changes: list[Action],
    drift: list[Action],
    skipped: int,
) -> None:
    plan = plan_resources([desired], {desired.key: observed}, applied, policy)
    assert [c.action for c in plan.changes] == changes
    assert [c.action for c in plan.drift] == drift
    assert len(plan.skipped) == skipped


def test_adopted_resource_never_gets_ampd_tags_and_extra_tags_stay() -> None:
    d = Desired(WS, {"alias": "a", "tags": {"team": "x", **OURS}})
    adopted = Live(
        WS, {"alias": "a", "tags": {"team": "x", "owner": "bob"}}, {"team": "x", "owner": "bob"}
    )
    assert plan_resources([d], {WS: adopted}, {}, MANAGE).in_sync
    retag = Live(WS, {"alias": "a", "tags": {"team": "y"}}, {"team": "y"})
    [change] = plan_resources([d], {WS: retag}, {}, MANAGE).changes
    assert change.diffs[0].after == {"team": "x"}


def test_kms_key_is_reported_never_changed() -> None:
    d = Desired(
        WS,
        {"alias": "a", "tags": OURS, "kms_key_arn": "arn:new"},
        immutable=frozenset({"kms_key_arn"}),
    )
    w = Live(WS, {"alias": "a", "tags": OURS, "kms_key_arn": "arn:old"}, OURS, status="ACTIVE")
    plan = plan_resources([d], {WS: w}, {}, MANAGE)
    assert plan.changes == ()
    [skip] = plan.skipped
    assert skip.diffs[0].field == "kms_key_arn"
    assert "only at creation" in skip.reason


@pytest.mark.parametrize("status", ["CREATING", "UPDATING", "CREATION_FAILED"])
def test_busy_or_failed_workspace_is_not_changed(status: str) -> None:
    d = Desired(WS, {"alias": "new", "tags": OURS})
    w = Live(WS, {"alias": "old", "tags": OURS}, OURS, status=status)
    assert plan_resources([d], {WS: w}, {}, MANAGE).changes == ()


@pytest.mark.parametrize(
    ("policy", "tags", "action", "reason_part"),
    [
        (MANAGE, OURS, None, "deletion: retain"),
        (DELETE, OURS, Action.DELETE, ""),
        (DELETE, {}, None, "never deleted"),
        (Policy("prod", mode="observe", deletion="delete"), OURS, None, "retain"),
    ],
)
def test_orphans(
    policy: Policy, tags: dict[str, str], action: Action | None, reason_part: str
) -> None:
    orphan = Live(RG, {"data": "x", "tags": tags}, tags)
    plan = plan_resources([], {}, {}, policy, [orphan])
    if action is None:
        assert plan.changes == ()
        assert reason_part in plan.skipped[0].reason
    else:
        assert [c.action for c in plan.changes] == [action]


def test_canonical_policy_documents_compare_equal() -> None:
    a = {"Statement": [{"Action": ["aps:RemoteWrite"], "Resource": "arn"}], "Version": "2012-10-17"}
    b = {"Version": "2012-10-17", "Statement": {"Resource": "arn", "Action": "aps:RemoteWrite"}}
    assert canonical(a) == canonical(b)


def test_client_token_is_deterministic_and_bounded() -> None:
    t = client_token("prod", "metrics", "eu-west-1", "123456789012")
    assert t == client_token("prod", "metrics", "eu-west-1", "123456789012")
    assert t != client_token("prod", "metrics", "eu-west-2", "123456789012")
    assert t != client_token("prod", "metrics", "eu-west-1", "123456789012", replaces="ws-1")
    assert 1 <= len(t) <= 64


def test_parse_key_round_trips() -> None:
    key = ResourceKey(Kind.IAM_POLICY, "ampd-writer/arn:aws:iam::aws:policy/X")
    assert parse_key(str(key)) == key
    assert parse_key("file/x") == ResourceKey(Kind.FILE, "x")
    assert parse_key("nonsense") is None


def _spec(**over: Any) -> StateSpec:
    doc: dict[str, Any] = {
        "version": 1,
        "stack": "prod",
        "workspace": {
            "alias": "m",
            "tags": {"team": "p"},
            "rule_groups": [{"name": "node", "file": "/r.yml"}],
        },
        "iam": {"writer": {}, "reader": {}},
    }
    doc.update(over)
    return StateSpec.model_validate(doc)


def test_desired_state_from_spec() -> None:
    spec = _spec()
    ws = desired_workspace(spec)
    assert ws is not None
    assert ws.fields["tags"] == {"team": "p", "ampd:managed": "true", "ampd:stack": "prod"}
    children = desired_workspace_children(
        spec, {}, "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"
    )
    assert ResourceKey(Kind.RULE_GROUP, "node") in children.errors  # file unreadable
    arn = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"
    iam = {str(d.key): d for d in desired_iam(spec, account="123456789012", ws_arn=arn).resources}
    writer = iam["aws.iam_policy/ampd-writer/ampd-remote-write"].fields["document"]
    assert writer["Statement"][0]["Action"] == ["aps:RemoteWrite"]
    assert writer["Statement"][0]["Resource"] == arn
    reader = iam["aws.iam_policy/ampd-reader/ampd-query"].fields["document"]
    assert set(reader["Statement"][0]["Action"]) == {
        "aps:QueryMetrics",
        "aps:GetSeries",
        "aps:GetLabels",
        "aps:GetMetricMetadata",
    }
    trust = iam["aws.iam_role/ampd-reader"].fields["trust"]
    assert trust["Statement"][0]["Principal"] == {
        "AWS": ["arn:aws:iam::123456789012:role/ampd-writer"]
    }
    # the managed variant is explicitly unwanted, so switching policies cleans up
    assert (
        iam[
            "aws.iam_policy/ampd-writer/arn:aws:iam::aws:policy/AmazonPrometheusRemoteWriteAccess"
        ].present
        is False
    )


def test_managed_policies_variant() -> None:
    spec = _spec(iam={"writer": {"policy": "managed"}, "reader": {"policy": "managed"}})
    iam = {str(d.key): d for d in desired_iam(spec, account="1", ws_arn="arn").resources}
    assert iam[
        "aws.iam_policy/ampd-writer/arn:aws:iam::aws:policy/AmazonPrometheusRemoteWriteAccess"
    ].fields == {"attached": True}
    assert iam[
        "aws.iam_policy/ampd-reader/arn:aws:iam::aws:policy/AmazonPrometheusQueryAccess"
    ].present
    assert iam["aws.iam_policy/ampd-reader/ampd-query"].present is False
