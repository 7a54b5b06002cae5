"""`ampd policy manage|observe|host|boundary` prints least privilege, and it is enough.

Every AWS call that real passes make against the emulator -- a manager building a stack,
correcting drift and deleting what was removed; a fleet host reading its state and the
files beside it, writing samples, observing the workspace and checking its own role -- is
recorded with its action and resource ARN (tests/harness/iam_calls.py) and judged by a
policy evaluator (tests/harness/iam_eval.py) against the policy `ampd policy` printed for
that role. A call the printed policy does not allow fails the test. The roles the
manager creates are held to their real IAM too: inline policies and permissions boundary,
as moto stores them (the writer policy reads the files beside the state, issue 22).

moto's own enforcement (server mode with ``INITIAL_NO_AUTH_ACTION_COUNT``) is not used:
moto 5 authorizes every AMP and SSM call against the resource ``*`` (only IAM calls on an
existing role get the role's ARN) and evaluates no ``iam:PermissionsBoundary`` or
``aws:RequestTag`` condition, so a policy scoped to ARNs -- which is the point -- is denied
there by construction. The evaluator here checks action, resource and condition.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.plan.desired import state_read_statement, writer_policy
from ampd.aws.side.side import AwsSide
from ampd.gateways.files import FileWriter
from ampd.gateways.sigv4 import Signer
from ampd.gateways.store import Store
from ampd.source.open import open_source
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import ACCOUNT_ID, AwsEmulator, Recorded
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_aws import REGION, AwsEnv, assume, role_session
from tests.harness.iam_calls import authorizations, data_plane_authorizations
from tests.harness.iam_eval import Request, decide

REPO = Path(__file__).resolve().parents[2]
AMPD = str(Path(sys.executable).parent / "ampd")
MANAGE = "/ci/prod/manage"
FLEET = "/fleet/prod/ampd"
LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:amp:*"  # AWS requires the :*
WORKSPACE = f"""\
workspace:
  alias: prod-metrics
  tags: {{team: platform}}
  retention_days: 30
  logging: {{log_group_arn: "{LOG_GROUP}"}}
  rule_groups:
    - {{name: node, file: rules/node.yml}}
{{extra}}  alertmanager: {{file: alertmanager.yml}}
  deletion: delete
"""


def manage_state(*, extra_group: bool = True, writer_policy: str = "scoped") -> str:
    extra = "    - {name: extra, file: rules/node.yml}\n" if extra_group else ""
    return (
        "version: 1\nstack: prod\n"
        f"aws: {{region: {REGION}, mode: manage}}\n"
        + WORKSPACE.replace("{extra}", extra)
        + "iam:\n"
        + "  writer: {role_name: ampd-writer, instance_profile: ampd-writer, "
        + f"policy: {writer_policy}}}\n"
        + "  reader: {role_name: ampd-reader}\n"
        + "prometheus: {enabled: false}\n"
        + f"state_source: {{location: 'ssm:{FLEET}'}}\n"
    )


FLEET_STATE = (
    "version: 1\nstack: prod\n"
    f"aws: {{region: {REGION}, mode: observe}}\n"
    + WORKSPACE.replace("{extra}", "").replace("  deletion: delete\n", "")
    + "iam:\n  writer: {role_name: ampd-writer, instance_profile: ampd-writer}\n"
    + "prometheus: {scrape_configs: [{job: node, targets: ['127.0.0.1:9100']}]}\n"
)


class World:
    """The emulator, the SSM parameters, and `ampd policy` as an administrator runs it."""

    def __init__(self, em: AwsEmulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.em = em
        self.tmp = tmp
        self.monkeypatch = monkeypatch
        self.admin_env = dict(os.environ)  # the emulator's default (all-powerful) keys
        self.state_dir = tmp / "state"
        self.iam = em.client("iam")
        self.ssm = em.client("ssm")
        rules = (REPO / "config/rules/node.yml").read_text()
        alertmanager = (REPO / "config/alertmanager.yml").read_text()
        for base in ("/ci/prod", "/fleet/prod"):
            self.put(f"{base}/rules/node.yml", rules)
            self.put(f"{base}/alertmanager.yml", alertmanager)
        self.put(MANAGE, manage_state())
        self.put(FLEET, FLEET_STATE)
        self.put("/prod/db/password", "hunter2")  # outside every prefix: never read

    def put(self, name: str, value: str) -> None:
        self.ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)

    def policy(self, kind: str, state: str, *extra: str) -> dict[str, Any]:
        """What `ampd policy KIND` prints, run as the administrator would."""
        env = {**self.admin_env, "STATE_DIRECTORY": str(self.state_dir)}
        res = subprocess.run(
            [AMPD, "--state", state, "policy", kind, *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        doc: dict[str, Any] = json.loads(res.stdout)
        return doc

    def act_as(self, session: Any) -> None:
        """This process's AWS calls are made with ``session``'s credentials from now on."""
        creds = session.get_credentials()
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
        self.monkeypatch.setenv("AWS_SESSION_TOKEN", creds.token)

    def spec(self, location: str, name: str) -> StateSpec:
        """The state as a host loads it: fetched from SSM with the files beside it."""
        src = open_source(
            f"ssm:{location}", self.tmp / name, files=FileWriter(), run_promtool=False
        )
        return src.load().spec

    def role_policies(self, role: str) -> tuple[list[str], str | None]:
        found = self.em.principal_policies(f"arn:aws:iam::{ACCOUNT_ID}:role/{role}")
        assert found is not None
        return found


@pytest.fixture
def world(
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    aws_emulator.instant()  # the subject is the policy, not AWS's transitions
    yield World(aws_emulator, tmp_path, monkeypatch)


def requests_of(calls: Iterable[Recorded]) -> list[tuple[Recorded, Request]]:
    return [(c, r) for c in calls for r in authorizations(c)]


def denied(
    pairs: Iterable[tuple[Any, Request]],
    policies: list[Mapping[str, Any] | str],
    boundary: Mapping[str, Any] | str | None = None,
) -> list[str]:
    return [
        f"{getattr(c, 'operation', c)}: {r} -> {d}"
        for c, r in pairs
        if (d := decide(policies, r, boundary)) != "allowed"
    ]


def manager_pass(world: World, spec: StateSpec, **kw: Any) -> list[Recorded]:
    side = AwsSide(make_gateway, Store(world.state_dir / "ampd.json"))
    result = aws_pass(side, spec, **kw, apply=True)
    assert [f"{o.change.key}: {o.message}" for o in result.outcomes if not o.ok] == []
    assert result.unobserved == ()
    return world.em.requests


def test_every_call_of_every_pass_is_allowed_by_the_printed_policy(world: World) -> None:
    em = world.em
    # -- the administrator: the boundary first, then the manager's role --------------------
    boundary = world.policy("boundary", f"ssm:{MANAGE}")
    world.iam.create_policy(PolicyName="ampd-boundary-prod", PolicyDocument=json.dumps(boundary))
    manage = world.policy("manage", f"ssm:{MANAGE}")
    assert f"arn:aws:aps:{REGION}:{ACCOUNT_ID}:workspace/*" in json.dumps(manage)  # not yet known
    world.act_as(role_session(em, "ampd-manager", {"manage": manage}))

    # -- the manager builds the stack, reading its own state from SSM ------------------------
    em.reset_requests()
    spec = world.spec(MANAGE, "manager")
    calls = manager_pass(world, spec)
    ops = {c.operation for c in calls}
    assert {"CreateWorkspace", "CreateRole", "PutRolePolicy", "AddRoleToInstanceProfile"} <= ops
    assert denied(requests_of(calls), [manage]) == []

    # once the workspace exists, the policy names it
    manage = world.policy("manage", f"ssm:{MANAGE}")
    ws_id = json.loads((world.state_dir / "ampd.json").read_text())["workspace_id"]
    ws_arn = f"arn:aws:aps:{REGION}:{ACCOUNT_ID}:workspace/{ws_id}"
    assert ws_arn in json.dumps(manage)
    world.iam.put_role_policy(
        RoleName="ampd-manager", PolicyName="manage", PolicyDocument=json.dumps(manage)
    )

    # -- drift, corrected ------------------------------------------------------------------
    amp = em.client("amp")
    amp.tag_resource(resourceArn=ws_arn, tags={"team": "someone-else"})
    amp.put_rule_groups_namespace(workspaceId=ws_id, name="node", data=b"groups: []\n")
    world.iam.update_assume_role_policy(
        RoleName="ampd-writer",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )
    world.iam.delete_role_policy(RoleName="ampd-reader", PolicyName="ampd-query")
    world.iam.delete_role_permissions_boundary(RoleName="ampd-writer")
    em.reset_requests()
    calls = manager_pass(world, spec, force_read=True)
    ops = {c.operation for c in calls}
    assert {"TagResource", "PutRuleGroupsNamespace", "UpdateAssumeRolePolicy"} <= ops
    assert {"PutRolePolicy", "PutRolePermissionsBoundary"} <= ops
    assert denied(requests_of(calls), [manage]) == []

    # -- a fleet host as the writer role ampd made: its state, the files, samples ---------
    host = world.policy("host", f"ssm:{FLEET}")
    writer = assume(em, f"arn:aws:iam::{ACCOUNT_ID}:role/ampd-writer")
    world.act_as(writer)
    em.reset_requests()
    fleet = world.spec(FLEET, "host")
    reads = em.requests
    names = [n for c in reads for n in c.params.get("Names", [])]
    assert sorted(names) == ["/fleet/prod/alertmanager.yml", FLEET, "/fleet/prod/rules/node.yml"]
    pairs: list[tuple[Any, Request]] = requests_of(reads)
    pairs += [
        (path, r)
        for path in remote_write(writer, ws_id)
        for r in data_plane_authorizations(path, REGION)
    ]
    assert [r.action for _, r in pairs][-1] == "aps:RemoteWrite"
    assert denied(pairs, [host]) == []
    # ... and its real IAM, as the manager wrote it: the inline policy reads the files
    # beside the state (not only the state), and the boundary allows all of it
    inline, role_boundary = world.role_policies("ampd-writer")
    assert role_boundary is not None
    assert denied(pairs, inline, role_boundary) == []
    # (before issue 22 the writer policy held the state parameter only: the files were denied)
    only_state = writer_policy(ws_arn, None)
    only_state["Statement"].append(state_read_statement(f"ssm:{FLEET}", ws_arn))
    assert len(denied(pairs, [only_state])) == 2

    # -- the same host observing the workspace, and checking its own role -----------------
    observe = world.policy("observe", f"ssm:{FLEET}", "--role", "ampd-writer")
    world.iam.put_role_policy(
        RoleName="ampd-writer", PolicyName="ampd-observe", PolicyDocument=json.dumps(observe)
    )
    em.reset_requests()
    side = AwsSide(make_gateway, Store(world.tmp / "host.json"), role_check_delay=0)
    result = aws_pass(side, world.spec(FLEET, "observer"), apply=True)
    assert result.unobserved == ()
    check = result.condition("ObserveRoleReadOnly")
    assert check is not None and (check.status, check.reason) == ("True", "ReadOnly")
    calls = em.requests
    ops = {c.operation for c in calls}
    assert {"GetParameters", "ListWorkspaces", "DescribeRuleGroupsNamespace"} <= ops
    assert {"GetRole", "GetInstanceProfile", "SimulatePrincipalPolicy"} <= ops
    assert em.writes() == []
    assert denied(requests_of(calls), [observe, host]) == []
    inline, role_boundary = world.role_policies("ampd-writer")
    assert denied(requests_of(calls), inline, role_boundary) == []
    assert fleet.workspace is not None

    # -- the manager again: a rule group removed (deletion: delete), managed policies ------
    world.act_as(assume(em, f"arn:aws:iam::{ACCOUNT_ID}:role/ampd-manager"))
    world.put(MANAGE, manage_state(extra_group=False, writer_policy="managed"))
    manage = world.policy("manage", f"ssm:{MANAGE}")
    world.iam.put_role_policy(
        RoleName="ampd-manager", PolicyName="manage", PolicyDocument=json.dumps(manage)
    )
    em.reset_requests()
    calls = manager_pass(world, world.spec(MANAGE, "manager-2"))
    ops = {c.operation for c in calls}
    assert {"DeleteRuleGroupsNamespace", "AttachRolePolicy", "DeleteRolePolicy"} <= ops
    assert denied(requests_of(calls), [manage]) == []


def remote_write(session: Any, ws_id: str) -> list[str]:
    """One signed remote write, as ampd's proxy signs it, to the data-plane stand-in."""
    creds = session.get_credentials()
    plane = DataPlane({creds.access_key: creds.secret_key}.get, {ws_id}, region=REGION)
    plane.fault = (200, b"")
    plane.start()
    try:
        url = f"{plane.url}/workspaces/{ws_id}/api/v1/remote_write"
        body = b"\x00snappy"
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
        signed = Signer(REGION).sign("POST", url, headers, body)
        req = urllib.request.Request(url, data=body, headers=signed, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        return [s.path for s in plane.seen if s.verdict.ok]
    finally:
        plane.stop()


def test_the_printed_policy_denies_what_ampd_must_not_do(world: World) -> None:
    """The other side of the proof: writes outside the stack -- another role, another
    workspace, a role without the boundary, a parameter outside the prefix -- are denied
    by what `ampd policy` prints."""
    manage = world.policy("manage", f"ssm:{MANAGE}")
    host = world.policy("host", f"ssm:{FLEET}")
    role = f"arn:aws:iam::{ACCOUNT_ID}:role"
    outside = [
        Request("iam:UpdateAssumeRolePolicy", f"{role}/Admin"),
        Request("iam:PutRolePolicy", f"{role}/Admin"),
        Request(
            "iam:AttachRolePolicy",
            f"{role}/ampd-writer",
            {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"},
        ),
        Request("iam:CreateRole", f"{role}/ampd-writer"),  # no boundary
        Request(
            "iam:CreateRole",
            f"{role}/ampd-writer",
            {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"},
        ),
        Request(
            "iam:CreateRole",
            f"{role}/Admin2",
            {"iam:PermissionsBoundary": f"arn:aws:iam::{ACCOUNT_ID}:policy/ampd-boundary-prod"},
        ),
        # the stack's own names, but a role without the boundary, or without the stack's tag
        Request("iam:PutRolePolicy", f"{role}/ampd-writer"),
        Request(
            "iam:AttachRolePolicy",
            f"{role}/ampd-writer",
            {"iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonPrometheusRemoteWriteAccess"},
        ),
        Request("iam:UpdateAssumeRolePolicy", f"{role}/ampd-writer"),
        Request(
            "iam:UpdateAssumeRolePolicy",
            f"{role}/ampd-writer",
            {"aws:ResourceTag/ampd:stack": "other"},
        ),
        Request(
            "iam:CreateRole",
            f"{role}/ampd-writer",
            {"iam:PermissionsBoundary": f"arn:aws:iam::{ACCOUNT_ID}:policy/ampd-boundary-prod"},
        ),  # untagged
        Request("iam:DeleteRolePermissionsBoundary", f"{role}/ampd-writer"),
        Request("iam:CreateUser", f"arn:aws:iam::{ACCOUNT_ID}:user/x"),
        Request("iam:PassRole", f"{role}/Admin"),
        Request(
            "aps:CreateWorkspace",
            f"arn:aws:aps:{REGION}:{ACCOUNT_ID}:workspace/*",
            {"aws:RequestTag/ampd:stack": "other"},
        ),
        Request(
            "ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/prod/db/password"
        ),
    ]
    for req in outside:
        assert decide([manage], req) != "allowed", req
    assert decide([host], outside[-1]) != "allowed"
    assert (
        decide(
            [host],
            Request("aps:DeleteWorkspace", f"arn:aws:aps:{REGION}:{ACCOUNT_ID}:workspace/ws-1"),
        )
        != "allowed"
    )


def test_a_pinned_workspace_is_named_and_nothing_is_created(world: World, tmp_path: Path) -> None:
    state = tmp_path / "pinned.yml"
    state.write_text(
        "version: 1\nstack: prod\naws: {region: eu-west-1}\n"
        "workspace: {id: ws-12345678-aaaa-bbbb-cccc-1234567890ab}\n"
    )
    doc = json.dumps(world.policy("manage", str(state), "--account", ACCOUNT_ID))
    assert "workspace/ws-12345678-aaaa-bbbb-cccc-1234567890ab" in doc
    assert "aps:CreateWorkspace" not in doc and "aps:ListWorkspaces" not in doc
    assert "iam:" not in doc  # no iam section: no IAM at all
    assert world.em.requests == [] or all(
        r.operation != "GetCallerIdentity" for r in world.em.requests
    )


@pytest.mark.parametrize("kind", ["manage", "observe", "host", "boundary"])
def test_policy_documents_are_valid_iam(world: World, kind: str) -> None:
    """Sids unique and alphanumeric, every statement an Allow with actions and resources."""
    doc = world.policy(kind, f"ssm:{MANAGE}", "--role", "ampd-writer")
    assert doc["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in doc["Statement"]]
    assert len(sids) == len(set(sids)) and all(s.isalnum() for s in sids)
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow" and st["Action"] and st["Resource"]
        assert all(
            a.split(":")[0] in {"aps", "iam", "ssm", "s3", "logs", "sts", "pricing"}
            for a in st["Action"]
        )
        if kind != "manage":  # only the manager writes
            assert not any(
                a.split(":")[1].startswith(
                    ("Create", "Put", "Delete", "Update", "Tag", "Attach", "Pass")
                )
                for a in st["Action"]
                if a != "aps:RemoteWrite"
            ), st
    assert len(json.dumps(doc, separators=(",", ":"))) <= 6144  # IAM's managed policy limit
