"""AMP's own verdict on the configurations ampd writes (#24).

AMP answers a write of a rule groups namespace, an alert manager definition, a logging or
a workspace configuration before it validates it; the verdict comes later as the
resource's status (ACTIVE, or CREATION_FAILED/UPDATE_FAILED with a ``statusReason``).
ampd reads it back, reports a failure DEGRADED with AMP's reason in the resource's
status and in ``RuleGroupsActive`` & co., does not write the same inputs again, and
writes as soon as the state file asks for something else (a fixed file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.client import make_gateway
from ampd.aws.side.side import WORKSPACE_POLL, AwsSide
from ampd.core import Condition, ConditionStatus, Health, Kind, ResourceKey, SideResult
from ampd.gateways.store import Store
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_amp import Phase
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, AwsEnv

RULES = "groups:\n  - name: node\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n"
BAD_RULES = "groups:\n  - name: node\n    rules:\n      - record: job:up:sum\n"  # no expr
ALERTMANAGER = "alertmanager_config: |\n  route:\n    receiver: a\n  receivers:\n    - name: a\n"
BAD_ALERTMANAGER = "route:\n  receiver: a\n"  # not an AMP definition
LOGS = "arn:aws:logs:eu-west-1:123456789012:log-group:amp:*"
RG = ResourceKey(Kind.RULE_GROUP, "node")
AM = ResourceKey(Kind.ALERTMANAGER, "prod")
LOGGING = ResourceKey(Kind.LOGGING, "prod")
CONFIG = ResourceKey(Kind.WORKSPACE_CONFIGURATION, "prod")
WS = ResourceKey(Kind.WORKSPACE, "prod")
AMP_WRITES = (
    "CreateRuleGroupsNamespace",
    "PutRuleGroupsNamespace",
    "CreateAlertManagerDefinition",
    "PutAlertManagerDefinition",
    "CreateLoggingConfiguration",
    "UpdateLoggingConfiguration",
    "UpdateWorkspaceConfiguration",
)


@pytest.fixture(autouse=True)
def _instant(request: pytest.FixtureRequest) -> None:
    """AMP's verdicts come at once here (the test of CREATING sets its own delay)."""
    if "aws_emulator" in request.fixturenames:
        request.getfixturevalue("aws_emulator").instant()


def spec(
    tmp_path: Path,
    *,
    rules: str | None = None,
    am: str | None = None,
    logs: str | None = None,
    retention: int | None = None,
) -> StateSpec:
    workspace: dict[str, Any] = {"alias": "prod-metrics"}
    if rules is not None:
        (tmp_path / "node.yml").write_text(rules)
        workspace["rule_groups"] = [{"name": "node", "file": str(tmp_path / "node.yml")}]
    if am is not None:
        (tmp_path / "am.yml").write_text(am)
        workspace["alertmanager"] = {"file": str(tmp_path / "am.yml")}
    if logs is not None:
        workspace["logging"] = {"log_group_arn": logs}
    if retention is not None:
        workspace["retention_days"] = retention
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


def status(result: SideResult, key: ResourceKey) -> Any:
    return {s.key: s for s in result.statuses}[key]


def cond(result: SideResult, name: str) -> Condition:
    c = result.condition(name)
    assert c is not None, (name, [x.type for x in result.conditions])
    return c


def amp_writes(em: AwsEmulator) -> list[str]:
    return [r.operation for r in em.writes() if r.operation in AMP_WRITES]


def test_invalid_rules_are_degraded_with_amps_reason_until_the_file_is_fixed(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path, rules=BAD_RULES), apply=True)
    assert all(o.ok for o in first.outcomes)  # AMP took the write; its verdict came after
    bad = status(first, RG)
    assert bad.health is Health.DEGRADED
    assert "CREATION_FAILED" in bad.message and "field 'expr' must be set" in bad.message
    c = cond(first, "RuleGroupsActive")
    assert (c.status, c.reason) == (ConditionStatus.FALSE, "CreationFailed")
    assert "aws.rule_group/node" in c.message and "field 'expr' must be set" in c.message

    # The same file again, read again from AWS: reported, not written again (no loop).
    aws_emulator.reset_requests()
    for force in (False, True):
        again = aws_pass(rec, spec(tmp_path, rules=BAD_RULES), apply=True, force_read=force)
        assert again.plan.changes == ()
        assert status(again, RG).health is Health.DEGRADED
        assert "field 'expr' must be set" in status(again, RG).message
        assert cond(again, "RuleGroupsActive").reason == "CreationFailed"
    assert amp_writes(aws_emulator) == []

    preview = aws_pass(rec, spec(tmp_path, rules=RULES), apply=False)  # `ampd plan`
    assert [(c.key, c.action.value) for c in preview.plan.changes] == [(RG, "update")]
    assert status(preview, RG).health is Health.DEGRADED  # until the fix is applied
    fixed = aws_pass(rec, spec(tmp_path, rules=RULES), apply=True)
    assert [(c.key, c.action.value) for c in fixed.plan.changes] == [(RG, "update")]
    assert amp_writes(aws_emulator) == ["PutRuleGroupsNamespace"]
    assert status(fixed, RG).health is Health.HEALTHY
    assert cond(fixed, "RuleGroupsActive").status is ConditionStatus.TRUE


def test_an_update_amp_rejects_then_the_old_file_put_back(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """AMP keeps the old definition when an update fails: the file put back equals what
    AMP holds, and ampd still writes it, since the status is what is wrong."""
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path, am=ALERTMANAGER), apply=True)
    assert cond(first, "AlertManagerActive").status is ConditionStatus.TRUE

    broken = aws_pass(rec, spec(tmp_path, am=BAD_ALERTMANAGER), apply=True)
    c = cond(broken, "AlertManagerActive")
    assert (c.status, c.reason) == (ConditionStatus.FALSE, "UpdateFailed")
    assert "'alertmanager_config' is required" in c.message
    assert status(broken, AM).health is Health.DEGRADED

    aws_emulator.reset_requests()
    same = aws_pass(rec, spec(tmp_path, am=BAD_ALERTMANAGER), apply=True, force_read=True)
    assert same.plan.changes == () and amp_writes(aws_emulator) == []
    assert status(same, AM).health is Health.DEGRADED

    back = aws_pass(rec, spec(tmp_path, am=ALERTMANAGER), apply=True)
    assert amp_writes(aws_emulator) == ["PutAlertManagerDefinition"]
    assert status(back, AM).health is Health.HEALTHY
    assert cond(back, "AlertManagerActive").status is ConditionStatus.TRUE


def test_a_failed_logging_configuration_is_reported_with_its_reason(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path, logs=LOGS), apply=True)
    assert cond(first, "LoggingActive").status is ConditionStatus.TRUE
    assert first.workspace is not None
    why = "the log group's resource policy does not allow AMP to write"
    set_logging_phase(
        aws_emulator, first.workspace.id, Phase("CREATING", 0.0, "CREATION_FAILED", why)
    )

    aws_emulator.reset_requests()
    seen = aws_pass(rec, spec(tmp_path, logs=LOGS), apply=True, force_read=True)
    c = cond(seen, "LoggingActive")
    assert (c.status, c.reason) == (ConditionStatus.FALSE, "CreationFailed")
    assert why in c.message
    assert status(seen, LOGGING).health is Health.DEGRADED and why in status(seen, LOGGING).message
    assert amp_writes(aws_emulator) == []  # ampd wrote these inputs: not again


def test_a_failed_configuration_update_is_not_repeated(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    aws_emulator.fail_next_configuration_update("retention is over the account's limit")
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path, retention=400), apply=True)
    c = cond(first, "WorkspaceConfigurationActive")
    assert (c.status, c.reason) == (ConditionStatus.FALSE, "UpdateFailed")
    assert "over the account's limit" in c.message
    assert status(first, CONFIG).health is Health.DEGRADED

    # AMP kept the old retention: the live value differs, yet these inputs failed.
    aws_emulator.reset_requests()
    again = aws_pass(rec, spec(tmp_path, retention=400), apply=True, force_read=True)
    assert again.plan.changes == () and amp_writes(aws_emulator) == []
    assert cond(again, "WorkspaceConfigurationActive").reason == "UpdateFailed"

    other = aws_pass(rec, spec(tmp_path, retention=60), apply=True)
    assert amp_writes(aws_emulator) == ["UpdateWorkspaceConfiguration"]
    assert cond(other, "WorkspaceConfigurationActive").status is ConditionStatus.TRUE


def test_a_configuration_amp_is_still_creating_is_looked_at_again_soon(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    rec = side(tmp_path)
    first = aws_pass(rec, spec(tmp_path), apply=True)  # the workspace, ACTIVE at once
    assert cond(first, "WorkspaceActive").status is ConditionStatus.TRUE
    assert first.condition("RuleGroupsActive") is None  # the state asks for none
    aws_emulator.transition_delay(600.0)
    creating = aws_pass(rec, spec(tmp_path, rules=RULES), apply=True)
    assert status(creating, RG).health is Health.PROGRESSING
    c = cond(creating, "RuleGroupsActive")
    assert (c.status, c.reason) == (ConditionStatus.FALSE, "Creating")
    assert creating.requeue_after == WORKSPACE_POLL
    aws_emulator.reset_requests()
    still = aws_pass(rec, spec(tmp_path, rules=RULES), apply=True)
    assert still.plan.changes == () and amp_writes(aws_emulator) == []
    assert aws_emulator.calls("DescribeRuleGroupsNamespace") == 1  # read again, not cached
    assert still.requeue_after == WORKSPACE_POLL


def test_the_prometheus_endpoint_of_a_workspace_found_by_alias(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """ListWorkspaces' summaries carry no prometheusEndpoint: it is derived."""
    (tmp_path / "a").mkdir()
    made = aws_pass(side(tmp_path / "a"), spec(tmp_path), apply=True)
    assert made.workspace is not None
    found = aws_pass(side(tmp_path), spec(tmp_path), apply=True)  # by alias, one list
    assert found.workspace is not None and found.workspace.id == made.workspace.id
    endpoint = status(found, WS).details["prometheus_endpoint"]
    assert endpoint == f"{DATA_PLANE_URL}/workspaces/{made.workspace.id}/"


def set_logging_phase(em: AwsEmulator, ws_id: str, phase: Phase) -> None:
    """AMP failing a logging configuration after it took it (the log group's policy, say):
    the emulator has no trigger for it, so its state is set directly."""
    with em._lock:
        logging = em._amp.ws(ws_id).logging
        assert logging is not None
        logging.phase = phase
