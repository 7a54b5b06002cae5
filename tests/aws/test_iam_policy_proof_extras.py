"""The IAM proof (tests/aws/test_iam_policy_proof.py) for a state that uses the workspace
surface of issue 26: the configuration's 2026 fields and label-set limits, query logging
and the resource policy -- and the Price List its estimate reads.

As there, the administrator prints each policy with ``ampd policy`` and installs it; the
manager and a fleet host act as the roles carrying them; every AWS call they make is
recorded by the emulator and judged, as tests/harness/iam_calls.py authorizes it, against
the printed policy (and the roles' real IAM: inline policies and permissions boundary).
The manager builds, changes, corrects drift and, the sections removed under ``deletion:
delete``, deletes -- each pass judged against the policy printed for the state it ran. And
the other way round: of the operations on these children, every one a printed policy
grants was called by some pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.side.side import AwsSide
from ampd.engine.facts import Facts
from ampd.gateways.store import Store, StoreView
from ampd.ingest.gateway import Fetched, price_list
from ampd.ingest.observe import Observer
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import ACCOUNT_ID, AwsEmulator, Recorded
from tests.harness.fixtures_aws import REGION, AwsEnv, assume, role_session
from tests.harness.iam_calls import authorizations
from tests.harness.iam_eval import Request, decide

AMPD = str(Path(sys.executable).parent / "ampd")
LOGS = f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:amp-queries:*"
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role"
CHILD_OPS = frozenset(
    {
        f"{verb}{name}"
        for name, verbs in (
            ("WorkspaceConfiguration", ("Describe", "Update")),
            ("QueryLoggingConfiguration", ("Describe", "Create", "Update", "Delete")),
            ("ResourcePolicy", ("Describe", "Put", "Delete")),
        )
        for verb in verbs
    }
)


def state(
    *, mode: str = "manage", sections: bool = True, threshold: int = 10, writer: str = "1111"
) -> str:
    extra = (
        "  out_of_order_window: 2m\n  rule_query_offset: 30s\n"
        f"  label_set_limits: [{{labels: {{team: web}}, max_series: {threshold}}}]\n"
        f'  query_logging: {{log_group_arn: "{LOGS}", qsp_threshold: {threshold}}}\n'
        f"  resource_policy: {{writers: ['{writer}22223333']}}\n"
        if sections
        else ""
    )
    return (
        f"version: 1\nstack: prod\naws: {{region: {REGION}, mode: {mode}}}\n"
        "workspace:\n  alias: prod-metrics\n  retention_days: 30\n"
        + extra
        + ("  deletion: delete\n" if mode == "manage" else "")
        + "iam:\n  writer: {role_name: ampd-writer, instance_profile: ampd-writer}\n"
        + "prometheus: {enabled: false}\n"
    )


class Admin:
    """The state file, ``ampd policy`` as an administrator runs it, and who acts."""

    def __init__(self, em: AwsEmulator, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.em, self.tmp, self.monkeypatch = em, tmp, monkeypatch
        self.env = {**os.environ, "STATE_DIRECTORY": str(tmp / "state")}
        self.path = tmp / "state.yml"
        self.iam = em.client("iam")

    def write(self, text: str) -> StateSpec:
        self.path.write_text(text)
        return load_spec(text, str(self.path)).spec

    def policy(self, kind: str, *extra: str) -> dict[str, Any]:
        res = subprocess.run(
            [AMPD, "--state", str(self.path), "policy", kind, *extra],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        doc: dict[str, Any] = json.loads(res.stdout)
        return doc

    def act_as(self, session: Any) -> None:
        creds = session.get_credentials()
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
        self.monkeypatch.setenv("AWS_SESSION_TOKEN", creds.token)

    def install(self, role: str, name: str, policy: Mapping[str, Any]) -> None:
        self.iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(policy))


@pytest.fixture
def admin(
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Admin]:
    aws_emulator.instant()  # the subject is the policy, not AWS's transitions
    yield Admin(aws_emulator, tmp_path, monkeypatch)


def requests_of(calls: Iterable[Recorded]) -> list[tuple[str, Request]]:
    return [(c.operation, r) for c in calls for r in authorizations(c)]


def denied(
    pairs: Iterable[tuple[str, Request]],
    policies: Sequence[Mapping[str, Any] | str],
    boundary: Mapping[str, Any] | str | None = None,
) -> list[str]:
    return [
        f"{op}: {r} -> {d}" for op, r in pairs if (d := decide(policies, r, boundary)) != "allowed"
    ]


def granted(policy: Mapping[str, Any]) -> set[str]:
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    return {op for op in CHILD_OPS if f"aps:{op}" in actions}


def manager_pass(admin: Admin, spec: StateSpec, **kw: Any) -> list[Recorded]:
    admin.em.reset_requests()
    side = AwsSide(make_gateway, Store(admin.tmp / "state" / "ampd.json"))
    result = aws_pass(side, spec, apply=True, **kw)
    assert [f"{o.change.key}: {o.message}" for o in result.outcomes if not o.ok] == []
    return admin.em.requests


def test_every_call_on_the_new_workspace_surface_is_allowed_and_nothing_more(
    admin: Admin,
) -> None:
    em, used = admin.em, set[str]()
    # -- the administrator: the boundary, then the manager's role with its policy ----------
    spec = admin.write(state())
    boundary = admin.policy("boundary")
    admin.iam.create_policy(PolicyName="ampd-boundary-prod", PolicyDocument=json.dumps(boundary))
    manage = admin.policy("manage")
    printed = [manage]
    admin.act_as(role_session(em, "ampd-manager", {"manage": manage}))

    # -- built -------------------------------------------------------------------------------
    calls = manager_pass(admin, spec)
    ops = {c.operation for c in calls}
    assert {"UpdateWorkspaceConfiguration", "CreateQueryLoggingConfiguration"} <= ops
    assert {"PutResourcePolicy", "CreateRole"} <= ops
    assert denied(requests_of(calls), [manage]) == []
    used |= ops

    # -- changed: the policy printed again names the workspace --------------------------------
    spec = admin.write(state(threshold=20, writer="4444"))
    manage = admin.policy("manage")
    printed.append(manage)
    ws_id = json.loads((admin.tmp / "state" / "ampd.json").read_text())["workspace_id"]
    assert f"workspace/{ws_id}" in json.dumps(manage)
    admin.install("ampd-manager", "manage", manage)
    calls = manager_pass(admin, spec)
    ops = {c.operation for c in calls}
    assert {"UpdateWorkspaceConfiguration", "UpdateQueryLoggingConfiguration"} <= ops
    assert "PutResourcePolicy" in ops
    assert denied(requests_of(calls), [manage]) == []
    used |= ops

    # -- drift, corrected ---------------------------------------------------------------------
    amp = em.client("amp")
    amp.update_query_logging_configuration(
        workspaceId=ws_id,
        destinations=[{"cloudWatchLogs": {"logGroupArn": LOGS}, "filters": {"qspThreshold": 1}}],
    )
    amp.update_workspace_configuration(workspaceId=ws_id, outOfOrderTimeWindowInSeconds=600)
    calls = manager_pass(admin, spec, force_read=True)
    ops = {c.operation for c in calls}
    assert {"UpdateWorkspaceConfiguration", "UpdateQueryLoggingConfiguration"} <= ops
    assert denied(requests_of(calls), [manage]) == []
    used |= ops

    # -- a fleet host observing it, as the writer role the manager made ---------------------
    observer_proof(admin, ws_id)

    # -- removed under deletion: delete: judged against the policy printed for that state ----
    spec = admin.write(state(sections=False))
    manage = admin.policy("manage")
    printed.append(manage)
    admin.act_as(assume(em, f"{ROLE}/ampd-manager"))
    admin.install("ampd-manager", "manage", manage)
    calls = manager_pass(admin, spec)
    ops = {c.operation for c in calls}
    assert {"DeleteQueryLoggingConfiguration", "DeleteResourcePolicy"} <= ops
    assert denied(requests_of(calls), [manage]) == []
    used |= ops

    # -- least privilege: what the printed policies grant of these, some pass called --------
    assert set().union(*(granted(p) for p in printed)) <= used & CHILD_OPS
    assert used & CHILD_OPS == CHILD_OPS


def observer_proof(admin: Admin, ws_id: str) -> None:
    """The writer role (the boundary on it) with the printed observe policy: an observe
    pass and the ingest side's Price List read, allowed by the printed policies and by the
    role's real IAM; nothing written."""
    em = admin.em
    spec = admin.write(state(mode="observe", threshold=20, writer="4444"))
    observe = admin.policy("observe", "--role", "ampd-writer")
    assert "pricing:GetProducts" in json.dumps(observe)
    admin.install("ampd-writer", "ampd-observe", observe)
    admin.act_as(assume(em, f"{ROLE}/ampd-writer"))
    em.reset_requests()
    side = AwsSide(make_gateway, Store(admin.tmp / "host.json"), role_check_delay=0)
    result = aws_pass(side, spec, apply=True)
    assert result.unobserved == () and result.plan.in_sync
    check = result.condition("ObserveRoleReadOnly")
    assert check is not None and (check.status, check.reason) == ("True", "ReadOnly")
    Observer(
        admin.tmp,
        StoreView(admin.tmp / "host.json"),
        metrics=None,
        scrape=lambda _url: Fetched(None, "not scraped here"),
        ask_prices=price_list,
    ).observe(spec, Facts(), 1)
    calls = em.requests
    ops = {c.operation for c in calls}
    assert {"DescribeWorkspaceConfiguration", "DescribeQueryLoggingConfiguration"} <= ops
    assert {"DescribeResourcePolicy", "SimulatePrincipalPolicy", "GetProducts"} <= ops
    assert em.writes() == []
    assert denied(requests_of(calls), [observe]) == []
    found = em.principal_policies(f"{ROLE}/ampd-writer")
    assert found is not None
    inline, boundary = found
    assert boundary is not None
    assert denied(requests_of(calls), inline, boundary) == []
