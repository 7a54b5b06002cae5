"""The AWS reconciler against moto in server mode, through the emulator's layer (real HTTP)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.gateway.writer import AwsWriting
from ampd.aws.side.side import WORKSPACE_POLL
from ampd.aws.side.side import AwsSide as AwsReconciler
from ampd.core import Action, Condition, ConditionStatus, Health, Kind, ResourceKey
from ampd.core import SideResult as AwsResult
from ampd.gateways.store import Store, StoredState
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, AwsEnv
from tests.harness.wait import wait_for

RULES = """\
groups:
  - name: node
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        labels:
          severity: page
      - record: job:up:sum
        expr: sum by (job) (up)
"""
ALERTMANAGER = """\
alertmanager_config: |
  route:
    receiver: default
  receivers:
    - name: default
"""
RG = ResourceKey(Kind.RULE_GROUP, "node")
WS = ResourceKey(Kind.WORKSPACE, "prod")


@pytest.fixture(autouse=True)
def _instant_aws(request: pytest.FixtureRequest) -> None:
    """The emulator's transitions are immediate here: these tests are about reconciling,
    not waiting (the test of a CREATING workspace sets its own delay)."""
    if "aws_emulator" in request.fixturenames:
        request.getfixturevalue("aws_emulator").instant()


@pytest.fixture
def rule_files(tmp_path: Path) -> dict[str, Path]:
    rules = tmp_path / "node.yml"
    rules.write_text(RULES)
    am = tmp_path / "alertmanager.yml"
    am.write_text(ALERTMANAGER)
    return {"rules": rules, "alertmanager": am}


def make_spec(files: dict[str, Path], **aws: Any) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1", "data_plane_url": DATA_PLANE_URL, **aws},
            "workspace": {
                "alias": "prod-metrics",
                "tags": {"team": "platform"},
                "retention_days": 30,
                "logging": {"log_group_arn": "arn:aws:logs:eu-west-1:123456789012:log-group:amp:*"},
                "rule_groups": [{"name": "node", "file": str(files["rules"])}],
                "alertmanager": {"file": str(files["alertmanager"])},
            },
            "iam": {"writer": {}, "reader": {}},
        }
    )


def reconciler(tmp_path: Path, name: str = "ampd.json") -> AwsReconciler:
    return AwsReconciler(make_gateway, Store(tmp_path / name))


def failed(result: AwsResult) -> list[str]:
    return [f"{o.change.key}: {o.message}" for o in result.outcomes if not o.ok]


def cond(result: AwsResult, name: str) -> ConditionStatus:
    c = result.condition(name)
    assert c is not None, name
    return c.status


def converge(
    aws_emulator: AwsEmulator, tmp_path: Path, files: dict[str, Path]
) -> tuple[AwsReconciler, AwsResult]:
    rec = reconciler(tmp_path)
    result = aws_pass(rec, make_spec(files), apply=True)
    assert failed(result) == []
    aws_emulator.reset_requests()
    return rec, result


def test_no_aws_sections_is_cheap(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    result = aws_pass(reconciler(tmp_path), StateSpec(version=1), apply=True)
    assert result.plan.in_sync
    assert result.workspace is None
    assert aws_emulator.requests == []


def test_empty_account_is_built_then_costs_nothing(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    rec = reconciler(tmp_path)
    spec = make_spec(rule_files)
    first = aws_pass(rec, spec, apply=True)
    assert failed(first) == []
    kinds = {c.key.kind for c in first.plan.changes}
    assert kinds == {
        Kind.WORKSPACE,
        Kind.WORKSPACE_CONFIGURATION,
        Kind.LOGGING,
        Kind.RULE_GROUP,
        Kind.ALERTMANAGER,
        Kind.IAM_ROLE,
        Kind.IAM_POLICY,
        Kind.INSTANCE_PROFILE,
    }
    ws = first.workspace
    assert ws is not None
    assert ws.remote_write_url == f"{DATA_PLANE_URL}/workspaces/{ws.id}/api/v1/remote_write"
    assert ws.query_url == f"{DATA_PLANE_URL}/workspaces/{ws.id}/api/v1/query"
    ws_status = {s.key: s for s in first.statuses}[WS]
    assert ws_status.details["prometheus_endpoint"] == f"{DATA_PLANE_URL}/workspaces/{ws.id}/"
    assert {c.type: c.status for c in first.conditions} == {
        "AwsReachable": ConditionStatus.TRUE,
        "WorkspaceActive": ConditionStatus.TRUE,
        "WorkspaceConfigurationActive": ConditionStatus.TRUE,
        "LoggingActive": ConditionStatus.TRUE,
        "RuleGroupsActive": ConditionStatus.TRUE,
        "AlertManagerActive": ConditionStatus.TRUE,
        "IamReady": ConditionStatus.TRUE,
        "IamOwned": ConditionStatus.TRUE,
        "IamTrustScoped": ConditionStatus.TRUE,
        "AwsAuthorized": ConditionStatus.TRUE,
    }

    # What AWS holds now, read with a plain client.
    amp, iam = aws_emulator.client("amp"), aws_emulator.client("iam")
    described = amp.describe_workspace(workspaceId=ws.id)["workspace"]
    assert described["tags"] == {"team": "platform", "ampd:managed": "true", "ampd:stack": "prod"}
    assert (
        amp.describe_workspace_configuration(workspaceId=ws.id)["workspaceConfiguration"][
            "retentionPeriodInDays"
        ]
        == 30
    )
    group = amp.describe_rule_groups_namespace(workspaceId=ws.id, name="node")
    assert group["ruleGroupsNamespace"]["data"] == RULES.encode()
    definition = amp.describe_alert_manager_definition(workspaceId=ws.id)
    assert definition["alertManagerDefinition"]["data"] == ALERTMANAGER.encode()
    writer_doc = iam.get_role_policy(RoleName="ampd-writer", PolicyName="ampd-remote-write")
    statement = writer_doc["PolicyDocument"]["Statement"][0]
    assert statement["Action"] == ["aps:RemoteWrite"]
    assert statement["Resource"] == ws.arn
    profile = iam.get_instance_profile(InstanceProfileName="ampd-writer")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["ampd-writer"]
    reader = iam.get_role(RoleName="ampd-reader")["Role"]
    assert {"Key": "ampd:stack", "Value": "prod"} in reader["Tags"]

    stored = Store(tmp_path / "ampd.json").load()
    assert stored.workspace_id == ws.id
    assert stored.client_token is not None
    assert str(RG) in stored.applied

    # Second pass, within resync: no call at all. Forced re-read: reads only.
    aws_emulator.reset_requests()
    second = aws_pass(rec, spec, apply=True)
    assert second.plan.in_sync and second.plan.changes == ()
    assert aws_emulator.requests == []
    third = aws_pass(rec, spec, apply=True, force_read=True)
    assert third.plan.in_sync
    assert aws_emulator.writes() == []
    assert len(aws_emulator.requests) > 5
    assert all(s.sync.value == "Synced" for s in third.statuses)
    # A fresh process (cache empty, store kept) finds the same workspace, writes nothing.
    aws_emulator.reset_requests()
    fresh = aws_pass(reconciler(tmp_path), spec, apply=True)
    assert fresh.workspace is not None and fresh.workspace.id == ws.id
    assert aws_emulator.writes() == []


def test_plan_only_writes_nothing(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    result = aws_pass(reconciler(tmp_path), make_spec(rule_files), apply=False)
    assert WS in {c.key for c in result.plan.changes}
    assert RG in {c.key for c in result.plan.changes}
    assert result.outcomes == ()
    assert aws_emulator.writes() == []
    assert aws_emulator.workspace_ids() == []
    assert not (tmp_path / "ampd.json").exists()  # a plan remembers nothing either


def test_drift_is_corrected(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    rec, first = converge(aws_emulator, tmp_path, rule_files)
    assert first.workspace is not None
    ws_id, arn = first.workspace.id, first.workspace.arn
    amp = aws_emulator.client("amp")
    amp.tag_resource(resourceArn=arn, tags={"team": "someone-else"})
    amp.delete_rule_groups_namespace(workspaceId=ws_id, name="node")
    aws_emulator.reset_requests()

    result = aws_pass(rec, make_spec(rule_files), apply=True, force_read=True)
    assert {c.key for c in result.plan.drift} == {WS, RG}
    assert {c.key for c in result.plan.changes} == {WS, RG}
    assert failed(result) == []
    assert amp.describe_workspace(workspaceId=ws_id)["workspace"]["tags"]["team"] == "platform"
    group = amp.describe_rule_groups_namespace(workspaceId=ws_id, name="node")
    assert group["ruleGroupsNamespace"]["data"] == RULES.encode()
    assert sorted(r.operation for r in aws_emulator.writes() if r.service == "aps") == [
        "CreateRuleGroupsNamespace",
        "TagResource",
    ]


@pytest.mark.parametrize("aws_opts", [{"drift": "report"}, {"mode": "observe"}])
def test_drift_is_only_reported(
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    tmp_path: Path,
    rule_files: dict[str, Path],
    aws_opts: dict[str, str],
) -> None:
    _, first = converge(aws_emulator, tmp_path, rule_files)
    assert first.workspace is not None
    amp = aws_emulator.client("amp")
    amp.tag_resource(resourceArn=first.workspace.arn, tags={"team": "someone-else"})
    amp.delete_rule_groups_namespace(workspaceId=first.workspace.id, name="node")
    aws_emulator.reset_requests()

    rec = reconciler(tmp_path)  # e.g. the operator switched to report/observe and restarted
    result = aws_pass(rec, make_spec(rule_files, **aws_opts), apply=True)
    assert {c.key for c in result.plan.drift} == {WS, RG}
    assert result.plan.changes == ()
    # observe hosts check once that their role cannot write, with a simulation: nothing
    # is written, not even a probe, and nothing is denied
    assert aws_emulator.writes() == []
    assert [r for r in aws_emulator.requests if r.status == 403] == []
    if aws_opts.get("mode") == "observe":
        assert result.condition("ObserveRoleReadOnly") is not None
    by_key = {s.key: s for s in result.statuses}
    assert by_key[RG].sync.value == "OutOfSync"
    assert by_key[RG].health is Health.MISSING


def test_workspace_deleted_out_of_band_is_recreated(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    rec, first = converge(aws_emulator, tmp_path, rule_files)
    assert first.workspace is not None
    old = first.workspace.id
    aws_emulator.client("amp").delete_workspace(workspaceId=old)

    result = aws_pass(rec, make_spec(rule_files), apply=True, force_read=True)
    assert failed(result) == []
    [ws_drift] = [c for c in result.plan.drift if c.key == WS]
    assert ws_drift.action is Action.CREATE
    assert "deleted outside ampd" in ws_drift.reason
    assert result.workspace is not None and result.workspace.id != old
    assert aws_emulator.workspace_ids() == [result.workspace.id]
    assert Store(tmp_path / "ampd.json").load().workspace_id == result.workspace.id
    # children follow the new workspace
    group = aws_emulator.client("amp").describe_rule_groups_namespace(
        workspaceId=result.workspace.id, name="node"
    )
    assert group["ruleGroupsNamespace"]["data"] == RULES.encode()


def test_access_denied_on_one_resource_others_converge(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    aws_emulator.deny("CreateRuleGroupsNamespace")
    rec = reconciler(tmp_path)
    spec = make_spec(rule_files)
    result = aws_pass(rec, spec, apply=True)
    [bad] = [o for o in result.outcomes if not o.ok]
    assert bad.change.key == RG
    assert bad.permanent
    assert "aps:CreateRuleGroupsNamespace" in bad.message
    assert "assumed-role/ampd-test" in bad.message
    assert sum(1 for o in result.outcomes if o.ok) == len(result.outcomes) - 1
    assert cond(result, "AwsAuthorized") is ConditionStatus.FALSE
    assert {s.key: s for s in result.statuses}[RG].health is Health.DEGRADED

    # Not retried while the desired state is the same...
    aws_emulator.reset_requests()
    again = aws_pass(rec, spec, apply=True)
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 0
    assert any(o.permanent and "not retried" in o.message for o in again.outcomes)
    # ...and retried once it changes (here: the rule file).
    aws_emulator.allow("CreateRuleGroupsNamespace")
    rule_files["rules"].write_text(RULES.replace("5m", "10m"))
    fixed = aws_pass(rec, spec, apply=True)
    assert failed(fixed) == []
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 1


@pytest.mark.parametrize("status", [400, 429, 500, 503])
def test_throttling_and_server_errors_are_retried_later(
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    tmp_path: Path,
    rule_files: dict[str, Path],
    status: int,
) -> None:
    if status in (400, 429):
        aws_emulator.throttle("CreateWorkspace", times=1, status=status)
    else:
        aws_emulator.fail("CreateWorkspace", times=1, status=status)
    rec = reconciler(tmp_path)
    spec = make_spec(rule_files)
    first = aws_pass(rec, spec, apply=True)
    [bad] = [o for o in first.outcomes if o.change.key == WS]
    assert not bad.ok and not bad.permanent
    assert bad.retry_after is not None and 0 < bad.retry_after <= 300
    assert first.requeue_after is not None
    assert cond(first, "AwsReachable") is ConditionStatus.TRUE
    assert aws_emulator.workspace_ids() == []
    second = aws_pass(rec, spec, apply=True)
    assert failed(second) == []
    assert len(aws_emulator.workspace_ids()) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint_fails_fast_and_keeps_last_workspace(
    aws_emulator_env: AwsEnv,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    rule_files: dict[str, Path],
) -> None:
    Store(tmp_path / "ampd.json").save(StoredState(workspace_id="ws-known"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    result = aws_pass(reconciler(tmp_path), make_spec(rule_files), apply=True)
    # a refused connection answers at once; a pass that retried or waited on timeouts
    # would take far longer than this bound (which leaves room for a loaded machine)
    assert time.monotonic() - started < 8.0
    assert cond(result, "AwsReachable") is ConditionStatus.FALSE
    assert result.workspace is not None and result.workspace.id == "ws-known"
    assert result.workspace.remote_write_url.endswith("/workspaces/ws-known/api/v1/remote_write")
    assert result.requeue_after is not None and result.requeue_after > 0


def test_dropped_connection_mid_pass_is_temporary(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    aws_emulator.drop("ListWorkspaces")
    rec = reconciler(tmp_path)
    first = aws_pass(rec, make_spec(rule_files), apply=True)
    assert cond(first, "AwsReachable") is ConditionStatus.FALSE
    second = aws_pass(rec, make_spec(rule_files), apply=True)
    assert failed(second) == []
    assert cond(second, "AwsReachable") is ConditionStatus.TRUE


def test_lost_create_response_still_ends_with_one_workspace(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    # AWS creates the workspace but the response never arrives (as after a crash).
    aws_emulator.drop("CreateWorkspace", after=True)
    spec = make_spec(rule_files)
    first = aws_pass(reconciler(tmp_path), spec, apply=True)
    assert cond(first, "AwsReachable") is ConditionStatus.FALSE
    token = Store(tmp_path / "ampd.json").load().client_token
    assert token is not None  # persisted before the call
    assert len(aws_emulator.workspace_ids()) == 1
    # A restarted process lists by alias first and adopts it: still exactly one.
    result = aws_pass(reconciler(tmp_path), spec, apply=True)
    assert failed(result) == []
    assert result.workspace is not None
    assert aws_emulator.workspace_ids() == [result.workspace.id]
    # And the token alone is enough: AWS answers a repeated create with the same workspace.
    replay = (
        AwsWriting()
        .writer(make_gateway("eu-west-1"))
        .create_workspace("prod-metrics", {}, token, None)
    )
    assert replay["workspaceId"] == result.workspace.id
    assert aws_emulator.workspace_ids() == [result.workspace.id]


def test_creating_workspace_requeues_then_children_follow(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    aws_emulator.creation_delay(0.6)
    rec = reconciler(tmp_path)
    spec = make_spec(rule_files)
    first = aws_pass(rec, spec, apply=True)
    assert first.workspace is not None
    assert (
        "CREATING"
        in (first.condition("WorkspaceActive") or Condition("", ConditionStatus.UNKNOWN)).message
    )
    assert first.requeue_after == WORKSPACE_POLL
    assert cond(first, "WorkspaceActive") is ConditionStatus.FALSE
    by_key = {s.key: s for s in first.statuses}
    assert by_key[RG].health is Health.PROGRESSING
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 0
    # IAM does not wait for the workspace
    assert aws_emulator.calls("CreateRole") == 2
    result = wait_for(
        lambda: aws_pass(rec, spec, apply=True),
        10,
        0.1,
        "WorkspaceActive=True",
        until=lambda r: r is not None and cond(r, "WorkspaceActive") is ConditionStatus.TRUE,
        retry_on=(),
    )
    assert failed(result) == []
    assert cond(result, "WorkspaceActive") is ConditionStatus.TRUE
    assert aws_emulator.calls("CreateRuleGroupsNamespace") == 1
    assert len(aws_emulator.workspace_ids()) == 1


def test_creation_failed_is_degraded_and_not_retried(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    aws_emulator.fail_creations(1)
    rec = reconciler(tmp_path)
    spec = make_spec(rule_files)
    first = aws_pass(rec, spec, apply=True)
    assert first.workspace is not None
    c = first.condition("WorkspaceActive")
    assert c is not None and c.status is ConditionStatus.FALSE and "CREATION_FAILED" in c.message
    again = aws_pass(rec, spec, apply=True, force_read=True)
    ws_status = {s.key: s for s in again.statuses}[WS]
    assert ws_status.health is Health.DEGRADED
    assert "CREATION_FAILED" in ws_status.message
    assert aws_emulator.calls("CreateWorkspace") == 1


def test_kms_key_change_is_reported_not_applied(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    rec, _ = converge(aws_emulator, tmp_path, rule_files)
    spec = make_spec(rule_files).model_copy(
        update={
            "workspace": make_spec(rule_files).workspace.model_copy(  # type: ignore[union-attr]
                update={"kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/new"}
            )
        }
    )
    result = aws_pass(rec, spec, apply=True)
    assert [s.key for s in result.plan.skipped if "kms_key_arn" in s.reason] == [WS]
    assert aws_emulator.writes() == []


@pytest.mark.parametrize(("deletion", "deleted"), [("retain", False), ("delete", True)])
def test_removed_rule_group_is_retained_or_deleted(
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    tmp_path: Path,
    rule_files: dict[str, Path],
    deletion: str,
    deleted: bool,
) -> None:
    rec, first = converge(aws_emulator, tmp_path, rule_files)
    assert first.workspace is not None
    base = make_spec(rule_files)
    assert base.workspace is not None
    spec = base.model_copy(
        update={
            "workspace": base.workspace.model_copy(update={"rule_groups": [], "deletion": deletion})
        }
    )
    result = aws_pass(rec, spec, apply=True)
    names = aws_emulator.client("amp").list_rule_groups_namespaces(workspaceId=first.workspace.id)
    present = [g["name"] for g in names["ruleGroupsNamespaces"]]
    if deleted:
        assert [c.action for c in result.plan.changes if c.key == RG] == [Action.DELETE]
        assert present == []
    else:
        assert [s.key for s in result.plan.skipped] == [RG]
        assert present == ["node"]


def test_region_auto_comes_from_imds(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path, rule_files: dict[str, Path]
) -> None:
    spec = make_spec(rule_files, region="auto")
    result = aws_pass(AwsReconciler(make_gateway, Store(tmp_path / "ampd.json")), spec, apply=True)
    assert result.workspace is not None and result.workspace.region == "eu-west-1"
    assert failed(result) == []


def test_rule_file_passes_promtool(rule_files: dict[str, Path]) -> None:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.skip("promtool is not installed")
    done = subprocess.run(
        [promtool, "check", "rules", str(rule_files["rules"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_concurrent_processes_make_exactly_one_workspace(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.harness.aws_fleet",
                "--endpoint",
                aws_emulator.endpoint,
                "--dir",
                str(tmp_path),
                "--creators",
                "8",
                "--timeout",
                "60",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(4)
    ]
    ids: list[str | None] = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0
            ids += json.loads(out.strip().splitlines()[-1])["ids"]
    finally:
        for p in procs:  # on a timeout too: no process and no pipe is left to the GC
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert len(ids) == 32
    assert None not in ids
    assert len(set(ids)) == 1
    assert aws_emulator.workspace_ids() == [ids[0]]
