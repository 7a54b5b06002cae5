"""Trusted principals stay in the host's own account unless ``iam.reader.trusted_accounts``
lists theirs, and every ARN takes its partition from the region (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.model import policy_from_spec
from ampd.aws.plan.desired import desired_iam, workspace_arn
from ampd.aws.plan.policy import Arns, PolicyInputs, partition, policy_for, role_arn_of_caller
from ampd.aws.plan.resources import plan_resources
from ampd.aws.side.side import AwsSide
from ampd.core import Kind, ResourceKey
from ampd.errors import SpecError
from ampd.gateways.store import Store
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import AwsEnv

ACCOUNT = "123456789012"
READER = ResourceKey(Kind.IAM_ROLE, "ampd-reader")


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("eu-west-1", "aws"),
        ("us-east-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-gov-east-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ],
)
def test_partition_comes_from_the_region(region: str, expected: str) -> None:
    assert partition(region) == expected
    assert workspace_arn(region, ACCOUNT, "ws-1").startswith(f"arn:{expected}:aps:{region}:")


def spec(**iam: Any) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "workspace": {"alias": "m"},
            "iam": {"writer": {}, "reader": {}, **iam},
            "state_source": {"location": "ssm:/fleet/prod/ampd"},
        }
    )


@pytest.mark.parametrize("region", ["cn-north-1", "us-gov-west-1"])
def test_no_literal_aws_partition_in_what_ampd_writes(region: str) -> None:
    """Every ARN ampd would write for a China or GovCloud stack is in that partition."""
    part = partition(region)
    s = spec()
    ws = workspace_arn(region, ACCOUNT, "ws-1")
    desired = desired_iam(s, account=ACCOUNT, ws_arn=ws).resources
    text = json.dumps([[str(d.key), d.fields] for d in desired])
    assert "arn:aws:" not in text
    assert f"arn:{part}:iam::aws:policy/AmazonPrometheusRemoteWriteAccess" in text
    assert f"arn:{part}:iam::{ACCOUNT}:role/ampd-writer" in text  # the reader's trust
    assert f"arn:{part}:ssm:{region}:{ACCOUNT}:parameter/fleet/prod/*" in text
    assert f"arn:{part}:iam::{ACCOUNT}:policy/ampd-boundary-prod" in text
    for kind in ("manage", "observe", "host", "boundary"):
        inputs = PolicyInputs(s, Arns.of(region, ACCOUNT), "ws-1", ("ssm:/fleet/prod/ampd",))
        doc = json.dumps(policy_for(kind, inputs))  # type: ignore[arg-type]
        assert "arn:aws:" not in doc, kind


def test_caller_arns_keep_their_partition() -> None:
    assert (
        role_arn_of_caller("arn:aws-cn:sts::123456789012:assumed-role/host/i-1")
        == "arn:aws-cn:iam::123456789012:role/host"
    )
    assert role_arn_of_caller("arn:aws:iam::123456789012:root") is None


# -- static: what validate can tell without the account ----------------------------------


@pytest.mark.parametrize(
    ("reader", "loc", "message"),
    [
        (
            "{trusted: ['arn:aws:s3:::bucket']}",
            "iam.reader.trusted[0]",
            "is not an ARN",
        ),
        (
            "{trusted: ['arn:aws:ec2:eu-west-1:111122223333:instance/i-1']}",
            "iam.reader.trusted[0]",
            "is not an IAM principal",
        ),
        (
            "{trusted: ['arn:aws:iam::111122223333:root', 'arn:aws:iam::999999999999:root']}",
            "iam.reader",
            "only this host's own account is trusted unless iam.reader.trusted_accounts",
        ),
        ("{trusted_accounts: ['9999']}", "iam.reader.trusted_accounts[0]", ""),
    ],
)
def test_validate_rejects_principals_it_can_judge(reader: str, loc: str, message: str) -> None:
    text = f"version: 1\niam:\n  writer: {{}}\n  reader: {reader}\n"
    with pytest.raises(SpecError) as err:
        load_spec(text, "state.yml")
    found = [p for p in err.value.problems if p.path == loc]
    assert found, [str(p) for p in err.value.problems]
    assert message in found[0].message
    assert str(found[0]).startswith("state.yml:4:")


def test_validate_accepts_listed_accounts() -> None:
    text = (
        "version: 1\niam:\n  writer: {}\n  reader:\n"
        "    trusted: ['arn:aws:iam::111122223333:root', 'arn:aws:iam::999999999999:role/g']\n"
        "    trusted_accounts: ['999999999999']\n"
    )
    assert load_spec(text, "state.yml").spec.iam is not None


# -- at plan time: the caller's account ----------------------------------------------------


@pytest.mark.parametrize(
    ("trusted", "accounts", "refused"),
    [
        (["writer"], [], False),
        ([f"arn:aws:iam::{ACCOUNT}:role/grafana"], [], False),
        (["arn:aws:iam::999999999999:root"], [], True),
        (["arn:aws:iam::999999999999:root"], ["999999999999"], False),
        ([f"arn:aws-cn:iam::{ACCOUNT}:role/grafana"], [], True),  # another partition
    ],
)
def test_foreign_trust_is_refused(trusted: list[str], accounts: list[str], refused: bool) -> None:
    s = spec(reader={"trusted": trusted, "trusted_accounts": accounts})
    ws = workspace_arn("eu-west-1", ACCOUNT, "ws-1")
    desired = desired_iam(s, account=ACCOUNT, ws_arn=ws).resources
    plan = plan_resources(desired, {d.key: None for d in desired}, {}, policy_from_spec(s))
    reader_keys = {d.key for d in desired if d.key.name.startswith("ampd-reader") and d.present}
    skipped = {x.key for x in plan.skipped}
    if refused:
        assert reader_keys <= skipped  # the role and its policies: nothing written
        assert not reader_keys & {c.key for c in plan.changes}
        [why] = {x.reason for x in plan.skipped if x.key == READER}
        assert "outside this account (123456789012)" in why
        assert "iam.reader.trusted_accounts" in why
    else:
        assert READER in {c.key for c in plan.changes}


def test_a_foreign_trust_is_never_created(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    side = AwsSide(make_gateway, Store(tmp_path / "ampd.json"))
    s = StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1"},
            "iam": {"writer": {}, "reader": {"trusted": ["arn:aws:iam::999999999999:root"]}},
        }
    )
    result = aws_pass(side, s, apply=True)
    created = [
        r.params.get("RoleName") for r in aws_emulator.writes() if r.operation == "CreateRole"
    ]
    assert created == ["ampd-writer"]
    trust = result.condition("IamTrustScoped")
    assert trust is not None and (trust.status, trust.reason) == ("False", "ForeignPrincipal")
    assert "arn:aws:iam::999999999999:root" in trust.message
    owned = result.condition("IamOwned")
    assert owned is not None and owned.status == "True"


def test_a_china_stack_end_to_end(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    s = StateSpec.model_validate(
        {
            "version": 1,
            "stack": "cn",
            "aws": {"region": "cn-north-1"},
            "workspace": {"alias": "m"},
            "iam": {"writer": {}, "reader": {}},
            "state_source": {"location": "ssm:/fleet/cn/ampd"},
        }
    )
    side = AwsSide(make_gateway, Store(tmp_path / "ampd.json"))
    first = aws_pass(side, s, apply=True)
    assert [o.message for o in first.outcomes if not o.ok] == []
    iam = aws_emulator.client("iam", "cn-north-1")
    reader = iam.get_role(RoleName="ampd-reader")["Role"]
    assert reader["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "AWS": [f"arn:aws-cn:iam::{ACCOUNT}:role/ampd-writer"]
    }
    assert reader["PermissionsBoundary"]["PermissionsBoundaryArn"] == (
        f"arn:aws-cn:iam::{ACCOUNT}:policy/ampd-boundary-cn"
    )
    doc = iam.get_role_policy(RoleName="ampd-writer", PolicyName="ampd-remote-write")
    assert "arn:aws:" not in json.dumps(doc["PolicyDocument"])
    again = aws_pass(side, s, apply=True, force_read=True)
    assert again.plan.in_sync, again.plan
