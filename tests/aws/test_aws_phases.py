"""The AWS side's four phases: observe and plan cannot write (their reader has no write
method, and no writer is reachable from them), plan and report are pure, apply alone
writes ampd.json, and a wave 2 planned before the workspace exists is on its placeholder."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from ampd.aws.gateway.client import AwsReader, make_gateway
from ampd.aws.gateway.writer import AwsWriter, AwsWriting
from ampd.aws.model import UNKNOWN_ID
from ampd.aws.side.side import AwsSide
from ampd.aws.side.values import AwsPlan
from ampd.core import Action, Kind, ResourceKey
from ampd.engine.facts import Facts
from ampd.gateways.store import StoreView
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass, writers_for
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, AwsEnv

WS = ResourceKey(Kind.WORKSPACE, "prod")
READS = {
    "identity",
    "list_workspaces",
    "describe_workspace",
    "describe_workspace_configuration",
    "describe_logging",
    "describe_query_logging",
    "describe_resource_policy",
    "describe_alertmanager",
    "list_rule_groups",
    "describe_rule_group",
    "get_role",
    "get_inline_policy",
    "list_inline_policies",
    "list_attached_policies",
    "simulate_principal_policy",
    "get_instance_profile",
}


@pytest.fixture(autouse=True)
def _instant_aws(request: pytest.FixtureRequest) -> None:
    if "aws_emulator" in request.fixturenames:
        request.getfixturevalue("aws_emulator").instant()


def public(cls: type) -> set[str]:
    return {n for n, v in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def spec(**workspace: object) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1", "data_plane_url": DATA_PLANE_URL},
            "workspace": {"alias": "prod-metrics", "retention_days": 30, **workspace},
            "iam": {"writer": {}},
        }
    )


def test_the_reader_has_no_write_and_the_writer_every_one() -> None:
    writes = public(AwsWriter) - public(AwsReader)
    # every write the old one-class gateway had, and query logging (3) and the resource
    # policy (2)
    assert len(writes) == 35
    assert public(AwsReader) == READS
    assert not any(hasattr(AwsReader, name) for name in writes)
    prefixes = ("create", "update", "put", "delete", "tag", "untag", "attach", "detach", "add")
    assert all(name.startswith((*prefixes, "remove")) for name in writes)


def test_a_writer_shares_its_readers_clients(aws_emulator_env: AwsEnv) -> None:
    reader = make_gateway("eu-west-1")
    writer = AwsWriting().writer(reader)
    assert writer.clients is reader.clients
    assert writer.region == reader.region


def test_observe_and_plan_write_nothing_and_plan_is_pure(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    store = tmp_path / "ampd.json"
    side = AwsSide(make_gateway, StoreView(store))  # its readers have no write method
    s, facts = spec(), Facts()
    seen = side.observe(s, facts)
    assert seen.failure is None and isinstance(seen.reader, AwsReader)
    assert not isinstance(seen.reader, AwsWriter)
    aws_emulator.reset_requests()
    plan = side.plan(s, facts, seen)
    assert plan == side.plan(s, facts, seen)  # pure: the same value from the same inputs
    result = side.report(s, facts, seen, plan, None)
    assert aws_emulator.requests == []  # neither plan nor report asks AWS anything
    assert aws_emulator.writes() == []
    assert not store.exists()  # nor writes ampd.json
    assert result.plan == plan.plan == plan.wave1.plan + plan.wave2.plan
    assert [c.key for c in plan.wave1.plan.changes] == [WS]
    # the workspace does not exist: its children are creates on "(known after apply)"
    kinds = {c.key.kind: c.action for c in plan.wave2.plan.changes}
    assert kinds[Kind.WORKSPACE_CONFIGURATION] is Action.CREATE
    policy = next(c for c in plan.wave2.plan.changes if c.key.kind is Kind.IAM_POLICY)
    assert UNKNOWN_ID in str(policy.after)


def test_apply_carries_out_the_plan_and_alone_writes_the_store(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    store = tmp_path / "ampd.json"
    side = AwsSide(make_gateway, StoreView(store))
    s, facts = spec(), Facts()
    seen = side.observe(s, facts)
    plan = side.plan(s, facts, seen)
    assert isinstance(plan, AwsPlan) and not store.exists()
    done = side.apply(plan, seen, writers_for(side))
    assert [o.change.key for o in done.outcomes if not o.ok] == []
    assert done.workspace is not None and done.record is not None
    ws_id = str(done.workspace.details["id"])
    assert done.record.id == ws_id
    # wave 2 was planned again on the workspace wave 1 made: no placeholder was written
    assert done.wave2 is not None
    assert all(UNKNOWN_ID not in str(c.after) for c in done.wave2.plan.changes)
    stored = StoreView(store).load()
    assert stored.workspace_id == ws_id and stored.client_token
    result = side.report(s, facts, seen, plan, done)
    assert result.workspace is not None and result.workspace.id == ws_id
    assert StoreView(store).load() == stored  # report wrote nothing


def test_forget_reads_makes_the_next_observe_read_again(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    side = AwsSide(make_gateway, StoreView(tmp_path / "ampd.json"))
    first = aws_pass(side, spec(), apply=True)
    assert all(o.ok for o in first.outcomes)
    aws_emulator.reset_requests()
    side.observe(spec(), Facts())
    assert aws_emulator.requests == []  # within resync: the cache answers
    side.forget_reads()
    side.observe(spec(), Facts())
    assert aws_emulator.requests != [] and aws_emulator.writes() == []
    aws_emulator.reset_requests()
    side.observe(spec(), Facts())
    assert aws_emulator.requests == []  # asked once: the next observe uses the cache again


def test_unreachable_aws_is_seen_not_raised(tmp_path: Path) -> None:
    side = AwsSide(
        lambda region, endpoint: AwsReader(region, "http://127.0.0.1:9"),
        StoreView(tmp_path / "ampd.json"),
        region_resolver=lambda: None,
    )
    auto = spec().model_copy(
        update={"aws": spec().aws_or_default.model_copy(update={"region": "auto"})}
    )
    seen = side.observe(auto, Facts())
    assert seen.failure is not None and seen.region is None
    plan = side.plan(auto, Facts(), seen)
    assert plan.plan.changes == ()
    result = side.report(auto, Facts(), seen, plan, None)
    reachable = result.condition("AwsReachable")
    assert reachable is not None and reachable.reason == "RegionUnknown"
