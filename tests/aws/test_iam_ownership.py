"""ampd writes only the IAM resources it owns (issue 22): an existing role or instance
profile without this stack's tags is reported, gets its own condition, and nothing about
it is written -- not its trust, not its policies, not the roles of a profile. Adoption is
the explicit, one-time ``ampd adopt KIND NAME``, which shows the diff first."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.gateway.writer import AwsWriting
from ampd.aws.model import NOT_OWNED, Desired, Live, Policy, ampd_tags
from ampd.aws.plan.resources import plan_resources
from ampd.aws.side.side import AwsSide
from ampd.commands.adopt import adopt_command
from ampd.core import Action, Health, Kind, ResourceKey, SyncStatus
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import EC2_TRUST, AwsEnv
from tests.harness.fixtures_local import AmpdProcess

OURS = ampd_tags("prod")
ROLE = ResourceKey(Kind.IAM_ROLE, "Admin")
INLINE = ResourceKey(Kind.IAM_POLICY, "Admin/ampd-query")
PROFILE = ResourceKey(Kind.INSTANCE_PROFILE, "ampd-writer")
WRITER = ResourceKey(Kind.IAM_ROLE, "ampd-writer")
TRUST = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "x"}, "Action": "sts:AssumeRole"}]}
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


# -- the plan: a table ----------------------------------------------------------------------


def role(tags: dict[str, str], trust: Any = None) -> Live:
    return Live(ROLE, {"trust": trust or {"other": 1}, "tags": tags}, tags)


CASES: list[tuple[str, list[Desired], dict[ResourceKey, Any], Policy, list[str], list[str]]] = [
    (
        "untagged role: trust never rewritten",
        [Desired(ROLE, {"trust": TRUST, "tags": OURS})],
        {ROLE: role({"team": "x"})},
        Policy("prod"),
        [],
        [NOT_OWNED],
    ),
    (
        "untagged role: no policy put on it",
        [Desired(ROLE, {"trust": TRUST, "tags": OURS}), Desired(INLINE, {"document": {}})],
        {ROLE: role({}), INLINE: None},
        Policy("prod"),
        [],
        [NOT_OWNED, "its role Admin exists, not created by ampd"],
    ),
    (
        "untagged role, observe mode: skipped too, not drift",
        [Desired(ROLE, {"trust": TRUST, "tags": OURS})],
        {ROLE: role({})},
        Policy("prod", mode="observe"),
        [],
        [NOT_OWNED],
    ),
    (
        "another stack's role",
        [Desired(ROLE, {"trust": TRUST, "tags": OURS}), Desired(INLINE, {"document": {}})],
        {ROLE: role(ampd_tags("other")), INLINE: None},
        Policy("prod"),
        [],
        ["belongs to ampd stack 'other'; left alone", "its role Admin belongs to another"],
    ),
    (
        "our role: its trust is corrected",
        [Desired(ROLE, {"trust": TRUST, "tags": OURS}), Desired(INLINE, {"document": {}})],
        {ROLE: role(OURS), INLINE: None},
        Policy("prod"),
        ["update aws.iam_role/Admin", "create aws.iam_policy/Admin/ampd-query"],
        [],
    ),
    (
        "absent role: created (with our tags), then its policy",
        [Desired(ROLE, {"trust": TRUST, "tags": OURS}), Desired(INLINE, {"document": {}})],
        {ROLE: None, INLINE: None},
        Policy("prod"),
        ["create aws.iam_role/Admin", "create aws.iam_policy/Admin/ampd-query"],
        [],
    ),
    (
        "untagged instance profile: its roles never swapped",
        [Desired(PROFILE, {"roles": ["ampd-writer"], "tags": OURS})],
        {
            PROFILE: Live(PROFILE, {"roles": ["Admin"], "tags": {}}, {}),
            WRITER: Live(WRITER, {"tags": OURS}, OURS),
        },
        Policy("prod"),
        [],
        [NOT_OWNED],
    ),
    (
        "our instance profile never takes in a role that is not ours",
        [Desired(PROFILE, {"roles": ["ampd-writer"], "tags": OURS})],
        {PROFILE: None, WRITER: Live(WRITER, {"tags": {}}, {})},
        Policy("prod"),
        [],
        ["its role ampd-writer exists, not created by ampd"],
    ),
    (
        "a managed policy absent from a foreign role: nothing to say",
        [Desired(ResourceKey(Kind.IAM_POLICY, "Admin/arn:aws:iam::aws:policy/X"), present=False)],
        {ROLE: role({}), ResourceKey(Kind.IAM_POLICY, "Admin/arn:aws:iam::aws:policy/X"): None},
        Policy("prod"),
        [],
        [],
    ),
    (
        "manage: false is only read, as before",
        [Desired(ROLE, {"trust": TRUST}, managed=False, note="iam.reader.manage is false")],
        {ROLE: role({})},
        Policy("prod"),
        [],
        ["not managed (iam.reader.manage is false): differs from the state file"],
    ),
]


@pytest.mark.parametrize(
    ("desired", "observed", "policy", "changes", "skipped"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_ownership_table(
    desired: list[Desired],
    observed: dict[ResourceKey, Any],
    policy: Policy,
    changes: list[str],
    skipped: list[str],
) -> None:
    plan = plan_resources(desired, observed, {}, policy)
    assert [f"{c.action.value} {c.key}" for c in plan.changes] == changes
    assert plan.drift == ()
    assert len(plan.skipped) == len(skipped)
    for s, want in zip(plan.skipped, skipped, strict=True):
        assert s.reason.startswith(want), s.reason


# -- against the emulator: an account with an untagged admin role ---------------------------


def admin_spec(**reader: Any) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1"},
            "iam": {
                "writer": {"role_name": "ampd-writer", "instance_profile": "ampd-writer"},
                "reader": {"role_name": "Admin", "trusted": ["writer"], **reader},
            },
        }
    )


@pytest.fixture
def admin(aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator) -> dict[str, Any]:
    """What someone else made: role Admin (admin rights) and instance profile ampd-writer
    holding it, neither tagged by ampd."""
    iam = aws_emulator.client("iam")
    iam.create_role(RoleName="Admin", AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.put_role_policy(
        RoleName="Admin", PolicyName="admin", PolicyDocument=json.dumps(ADMIN_POLICY)
    )
    iam.create_instance_profile(InstanceProfileName="ampd-writer")
    iam.add_role_to_instance_profile(InstanceProfileName="ampd-writer", RoleName="Admin")
    aws_emulator.reset_requests()
    return iam.get_role(RoleName="Admin")["Role"]


def writes_touching(em: AwsEmulator, *names: str) -> list[str]:
    out = []
    for r in em.writes():
        p = r.params
        if p.get("RoleName") in names or p.get("InstanceProfileName") in names:
            out.append(f"{r.operation} {p.get('RoleName') or p.get('InstanceProfileName')}")
    return out


def test_an_untagged_admin_role_is_never_written(
    admin: dict[str, Any], aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    side = AwsSide(make_gateway, Store(tmp_path / "ampd.json"))
    spec = admin_spec(trusted=["arn:aws:iam::999999999999:root"])
    plan = aws_pass(side, spec, apply=False)
    skipped = {s.key: s.reason for s in plan.plan.skipped}
    assert skipped[ROLE] == NOT_OWNED
    assert skipped[INLINE].startswith("its role Admin exists, not created by ampd")
    assert skipped[PROFILE] == NOT_OWNED
    assert ROLE not in {c.key for c in plan.plan.changes}

    result = aws_pass(side, spec, apply=True)
    assert writes_touching(aws_emulator, "Admin") == []
    assert writes_touching(aws_emulator, "ampd-writer") == [
        "CreateRole ampd-writer",  # ours: created, tagged, with its policy
        "PutRolePolicy ampd-writer",
    ]
    iam = aws_emulator.client("iam")
    after = iam.get_role(RoleName="Admin")["Role"]
    assert after["AssumeRolePolicyDocument"] == admin["AssumeRolePolicyDocument"]
    assert "Tags" not in after or after["Tags"] == []
    assert iam.list_role_policies(RoleName="Admin")["PolicyNames"] == ["admin"]
    profile = iam.get_instance_profile(InstanceProfileName="ampd-writer")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["Admin"]  # no role swap

    owned = result.condition("IamOwned")
    assert owned is not None and (owned.status, owned.reason) == ("False", "NotCreatedByAmpd")
    assert "aws.iam_role/Admin: exists, not created by ampd" in owned.message
    assert "ampd adopt iam_role Admin" in owned.message
    assert "ampd adopt instance_profile ampd-writer" in owned.message
    statuses = {s.key: s for s in result.statuses}
    assert statuses[ROLE].sync is SyncStatus.OUT_OF_SYNC
    assert statuses[ROLE].health is Health.DEGRADED
    assert statuses[ROLE].message == "skipped (exists, not created by ampd)"
    ready = result.condition("IamReady")
    assert ready is not None and ready.status == "False"


def test_plan_prints_the_skip(admin: dict[str, Any], tmp_path: Path) -> None:
    proc = AmpdProcess(tmp_path)
    proc.write_state(json.loads(admin_spec().model_dump_json(exclude_defaults=True)))
    res = proc.ampd("plan")
    assert "· aws.iam_role/Admin skipped: exists, not created by ampd" in res.stdout, res.stdout
    assert "· aws.instance_profile/ampd-writer skipped: exists, not created by ampd" in res.stdout


# -- adoption ---------------------------------------------------------------------------------


def adopt(
    spec: StateSpec, kind: str, name: str, answer: str = "", yes: bool = False
) -> tuple[int, str]:
    out = io.StringIO()
    code = adopt_command(
        lambda: make_gateway("eu-west-1"),
        spec,
        kind,  # type: ignore[arg-type]
        name,
        writing=AwsWriting(),
        account=None,
        yes=yes,
        stdin=io.StringIO(answer),
        stdout=out,
    )
    return code, out.getvalue()


def test_adopt_shows_the_diff_and_writes_nothing_unless_confirmed(
    admin: dict[str, Any], aws_emulator: AwsEmulator
) -> None:
    code, text = adopt(admin_spec(), "iam_role", "Admin", answer="n\n")
    assert code == 1
    assert "aws.iam_role/Admin (arn:aws:iam::123456789012:role/Admin) exists, not created" in text
    assert "+ tag ampd:managed = true" in text
    assert "+ tag ampd:stack = prod" in text
    assert "~ aws.iam_role/Admin (update)" in text  # the trust it would get
    assert "trust:" in text
    assert "+ aws.iam_policy/Admin/ampd-query (create)" in text
    assert "not adopted: nothing was written" in text
    assert aws_emulator.writes() == []
    code, _ = adopt(admin_spec(), "iam_role", "Admin", answer="")  # EOF: not confirmed
    assert code == 1
    assert aws_emulator.writes() == []


def test_adopt_then_the_next_pass_manages_it(
    admin: dict[str, Any], aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    code, text = adopt(admin_spec(), "iam_role", "Admin", answer="y\n")
    assert code == 0, text
    assert [f"{r.operation}" for r in aws_emulator.writes()] == ["TagRole"]
    tags = aws_emulator.client("iam").list_role_tags(RoleName="Admin")["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == OURS
    again, text = adopt(admin_spec(), "iam_role", "Admin", yes=True)
    assert again == 1 and "already ampd's" in text

    side = AwsSide(make_gateway, Store(tmp_path / "ampd.json"))
    plan = aws_pass(side, admin_spec(), apply=False).plan
    assert {(c.key, c.action) for c in plan.changes} >= {
        (ROLE, Action.UPDATE),
        (INLINE, Action.CREATE),
    }


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("iam_role", "Other", "the state does not name iam_role Other"),
        ("iam_role", "ampd-writer", "does not exist: ampd creates it"),
    ],
)
def test_adopt_refuses(
    admin: dict[str, Any], aws_emulator: AwsEmulator, kind: str, name: str, message: str
) -> None:
    code, text = adopt(admin_spec(), kind, name, yes=True)
    assert code == 1
    assert message in text
    assert aws_emulator.writes() == []


def test_adopt_another_stacks_role_is_refused(
    admin: dict[str, Any], aws_emulator: AwsEmulator
) -> None:
    aws_emulator.client("iam").tag_role(
        RoleName="Admin",
        Tags=[
            {"Key": "ampd:managed", "Value": "true"},
            {"Key": "ampd:stack", "Value": "other"},
        ],
    )
    aws_emulator.reset_requests()
    code, text = adopt(admin_spec(), "iam_role", "Admin", yes=True)
    assert code == 1 and "belongs to ampd stack 'other'" in text
    assert aws_emulator.writes() == []


def test_adopt_instance_profile_from_the_command_line(
    admin: dict[str, Any], aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    proc = AmpdProcess(tmp_path)
    proc.write_state(json.loads(admin_spec().model_dump_json(exclude_defaults=True)))
    ampd = str(Path(sys.executable).parent / "ampd")
    argv = [ampd, "--state", str(proc.state_file), "adopt", "instance_profile", "ampd-writer"]
    asked = subprocess.run(
        argv, input="no\n", capture_output=True, text=True, env=proc.env, check=False
    )
    assert asked.returncode == 1
    assert "Adopt aws.instance_profile/ampd-writer into stack prod? [y/N]" in asked.stdout
    # the diff says what taking it over means: Admin out, ampd's writer role in
    assert "~ aws.instance_profile/ampd-writer (update)" in asked.stdout
    assert '    roles: ["Admin"] -> ["ampd-writer"]' in asked.stdout, asked.stdout
    assert aws_emulator.writes() == []
    done = subprocess.run(
        [*argv, "--yes"], capture_output=True, text=True, env=proc.env, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [r.operation for r in aws_emulator.writes()] == ["TagInstanceProfile"]
