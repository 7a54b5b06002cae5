"""``pricing:GetProducts`` in the policies ampd prints: exactly when a pass asks the AWS
Price List for the estimate's prices.

The ingest side (``ampd.ingest.observe``) asks it when the state has a workspace and its
``cost.prices`` does not set the Region's prices; the built-in table and the state's own
prices need no call, and a state without a workspace asks nothing. The Price List has no
resource-level permissions (Resource ``*``). The table below holds the printed policies
to the ingest side's own decision, made by its real observer, so the two cannot drift
apart; the proof then makes the call as a role carrying the printed policy (and the
permissions boundary of the roles ampd creates) and judges what the emulator recorded,
and asks the emulator's ``iam:SimulatePrincipalPolicy`` about the role's real IAM."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.plan.policy import (
    Arns,
    PolicyInputs,
    boundary_policy,
    host_policy,
    manage_policy,
    observe_policy,
)
from ampd.engine.facts import Facts
from ampd.gateways.store import StoreView
from ampd.ingest.gateway import Fetched, price_list
from ampd.ingest.observe import Observer
from ampd.spec.models import StateSpec
from tests.harness.aws_emulator import ACCOUNT_ID, AwsEmulator
from tests.harness.fixtures_aws import AwsEnv, role_session
from tests.harness.iam_calls import authorizations
from tests.harness.iam_eval import Request, decide

GET_PRODUCTS = Request("pricing:GetProducts", "*")
DAY = datetime.date(2026, 12, 7)
TIERS = [{"up_to": 2_000_000_000, "usd": 0.9}, {"up_to": None, "usd": 0.16}]


def state(region: str, *, workspace: bool = True, priced: tuple[str, ...] = ()) -> StateSpec:
    doc: dict[str, Any] = {
        "version": 1,
        "stack": "prod",
        "aws": {"region": region, "mode": "observe"},
        "iam": {"writer": {"role_name": "ampd-writer"}},
        "prometheus": {"scrape_configs": [{"job": "app", "targets": ["127.0.0.1:1"]}]},
    }
    if workspace:
        doc["workspace"] = {"alias": "prod-metrics"}
    if priced:
        doc["cost"] = {
            "prices": {r: {"as_of": "2026-12-01", "per_10m_samples": TIERS} for r in priced}
        }
    return StateSpec.model_validate(doc)


def observer(tmp: Path, asked: list[str], ask: Any = None) -> Observer:
    """The ingest side's real observer; the Price List is ``ask`` (by default: recorded,
    answered with nothing)."""

    def record(region: str, endpoint: str | None) -> list[str]:
        asked.append(region)
        return ask(region, endpoint) if ask is not None else []

    return Observer(
        tmp,
        StoreView(tmp / "ampd.json"),
        metrics=None,
        scrape=lambda _url: Fetched(None, "not scraped here"),
        ask_prices=record,
        today=lambda: DAY,
    )


def grants(policy: dict[str, Any]) -> bool:
    return decide([policy], GET_PRODUCTS) == "allowed"


CASES = [
    # (what, region, workspace, regions the state prices itself, asks)
    ("a workspace: the Price List", "eu-west-1", True, (), True),
    ("a workspace in a built-in Region: still asked first", "us-east-1", True, (), True),
    ("the state's own prices for the Region", "eu-west-1", True, ("eu-west-1",), False),
    ("the state's prices for another Region only", "eu-west-1", True, ("us-east-1",), True),
    ("no workspace: AWS is not in play", "eu-west-1", False, (), False),
    ("no workspace, with prices", "eu-west-1", False, ("eu-west-1",), False),
]


@pytest.mark.parametrize(
    ("region", "workspace", "priced", "asks"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_granted_exactly_when_the_ingest_side_asks(
    tmp_path: Path, region: str, workspace: bool, priced: tuple[str, ...], asks: bool
) -> None:
    spec = state(region, workspace=workspace, priced=priced)
    asked: list[str] = []
    observer(tmp_path, asked).observe(spec, Facts(), 1)
    assert asked == ([region] if asks else [])  # the ingest side's own decision
    inputs = PolicyInputs(spec, Arns.of(region, ACCOUNT_ID), own_role="ampd-writer")
    for build in (manage_policy, observe_policy, boundary_policy):
        assert grants(build(inputs)) is asks, build.__name__
    assert not grants(host_policy(inputs))  # the data plane asks no price
    statements = [
        st
        for build in (manage_policy, observe_policy, boundary_policy)
        for st in build(inputs)["Statement"]
        if "pricing:GetProducts" in st["Action"]
    ]
    # alone in its statement, on "*": it has no resource-level permissions
    assert all(
        (st["Action"], st["Resource"]) == (["pricing:GetProducts"], "*") for st in statements
    )


def test_the_call_a_pass_makes_is_allowed_by_the_printed_policy_and_boundary(
    aws_emulator_env: AwsEnv,
    aws_emulator: AwsEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fleet host's role, as ampd creates it: the printed observe policy inline, the
    printed boundary on it. The ingest side asks the Price List through the emulator as
    that role; what was recorded is allowed by both, and by the role's real IAM. (In
    us-east-1, whose prices the emulated Price List holds: the answer is used.)"""
    spec = state("us-east-1")
    inputs = PolicyInputs(spec, Arns.of("us-east-1", ACCOUNT_ID), own_role="ampd-writer")
    observe, boundary = observe_policy(inputs), boundary_policy(inputs)
    session = role_session(aws_emulator, "ampd-writer", {"observe": observe}, boundary=boundary)
    creds = session.get_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds.token)
    aws_emulator.reset_requests()

    asked: list[str] = []
    seen = observer(tmp_path, asked, price_list).observe(spec, Facts(), 1)
    assert asked == ["us-east-1"] and seen.notes == ()  # asked, and answered
    assert seen.prices is not None and seen.prices.source == "price-list"
    calls = [r for r in aws_emulator.requests if r.service == "pricing"]
    assert [c.operation for c in calls] == ["GetProducts"]
    requests = [r for c in calls for r in authorizations(c)]
    assert requests == [GET_PRODUCTS]
    assert [decide([observe], r, boundary) for r in requests] == ["allowed"]
    # the emulator's SimulatePrincipalPolicy, over the role's real inline policy and boundary
    simulated = aws_emulator.client("iam").simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{ACCOUNT_ID}:role/ampd-writer",
        ActionNames=["pricing:GetProducts"],
        ResourceArns=["*"],
    )
    assert [r["EvalDecision"] for r in simulated["EvaluationResults"]] == ["allowed"]


def test_a_state_with_its_own_prices_calls_nothing_and_is_granted_nothing(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    spec = state("eu-west-1", priced=("eu-west-1",))
    aws_emulator.reset_requests()
    asked: list[str] = []
    seen = observer(tmp_path, asked, price_list).observe(spec, Facts(), 1)
    assert asked == [] and seen.prices is not None and seen.prices.source == "state"
    assert [r for r in aws_emulator.requests if r.service == "pricing"] == []
    inputs = PolicyInputs(spec, Arns.of("eu-west-1", ACCOUNT_ID), own_role="ampd-writer")
    assert "pricing:" not in json.dumps([observe_policy(inputs), manage_policy(inputs)])
