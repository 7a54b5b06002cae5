"""Label-set limits derived from the stack's own labels: ``{derive: [cluster]}`` is a
limit on the label set the stack puts on everything it ships (its external labels), a
free meter with ``max_series: 0``. Planned and applied against the AWS emulator; it
follows an edit of the label; a name the stack does not ship is refused, never made up;
per-host labels cannot be derived."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ampd.aws.gateway.client import make_gateway
from ampd.aws.side.side import AwsSide
from ampd.core import Action, Kind, ResourceKey
from ampd.engine.plantext import plan_text
from ampd.errors import PermanentError, SpecError
from ampd.gateways.store import Store
from ampd.spec.load import load_spec
from ampd.spec.models import StateSpec
from tests.aws.passes import aws_pass
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.fixtures_aws import DATA_PLANE_URL, AwsEnv

CONFIG = ResourceKey(Kind.WORKSPACE_CONFIGURATION, "prod")
METER = {"derive": ["cluster", "env"]}  # max_series 0: a meter
LIMIT = {"labels": {"team": "web"}, "max_series": 5000}


@pytest.fixture(autouse=True)
def _instant(aws_emulator: AwsEmulator) -> None:
    aws_emulator.instant()


def _spec(limits: list[dict[str, Any]], **labels: str) -> StateSpec:
    return StateSpec.model_validate(
        {
            "version": 1,
            "stack": "prod",
            "aws": {"region": "eu-west-1", "data_plane_url": DATA_PLANE_URL},
            "workspace": {"alias": "prod-metrics", "label_set_limits": limits},
            "prometheus": {"external_labels": labels},
        }
    )


def _updates(em: AwsEmulator) -> list[Any]:
    return [
        r.params["limitsPerLabelSet"]
        for r in em.requests
        if r.operation == "UpdateWorkspaceConfiguration"
    ]


def test_a_derived_meter_is_planned_applied_and_follows_the_label(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    side = AwsSide(make_gateway, Store(tmp_path / "ampd.json"))
    want = _spec([METER, LIMIT], cluster="eu-1", env="prod")
    first = aws_pass(side, want, apply=True)
    assert first.workspace is not None
    assert _updates(aws_emulator) == [
        [
            {"labelSet": {"cluster": "eu-1", "env": "prod"}, "limits": {"maxSeries": 0}},
            {"labelSet": {"team": "web"}, "limits": {"maxSeries": 5000}},
        ]
    ]
    aws_emulator.reset_requests()
    assert aws_pass(side, want, apply=True, force_read=True).plan.in_sync

    edited = _spec([METER, LIMIT], cluster="eu-2", env="prod")  # the stack's label edited
    planned = aws_pass(side, edited, apply=False, force_read=True)
    [change] = [c for c in planned.plan.changes if c.key == CONFIG]
    assert change.action is Action.UPDATE
    [diff] = [d for d in change.diffs if d.field == "label_set_limits"]
    assert diff.after[0] == {"labels": {"cluster": "eu-2", "env": "prod"}, "max_series": 0}
    text = plan_text(planned.plan, color=False)
    assert "eu-2" in text and "aws.workspace_configuration/prod" in text
    assert _updates(aws_emulator) == []  # a plan writes nothing
    aws_pass(side, edited, apply=True, force_read=True)
    assert _updates(aws_emulator)[0][0]["labelSet"] == {"cluster": "eu-2", "env": "prod"}


def test_a_label_the_stack_does_not_ship_is_not_derived(
    aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator, tmp_path: Path
) -> None:
    """The AWS side stops with the reason, a PermanentError (which the pass reports as
    the side's Degraded condition): nothing is sent."""
    side = AwsSide(make_gateway, Store(tmp_path / "ampd.json"))
    why = "workspace.label_set_limits[0].derive: env is not in prometheus.external_labels"
    with pytest.raises(PermanentError, match=re.escape(why)):
        aws_pass(side, _spec([METER], cluster="eu-1"), apply=True)
    assert _updates(aws_emulator) == []


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ({"derive": ["instance_id"]}, "instance_id differs per host"),
        ({"derive": ["cluster"], "labels": {"a": "b"}}, "labels (written out) or derive"),
        ({"max_series": 0}, "labels (written out) or derive"),
        ({"derive": ["cluster", "cluster"]}, "repeated: cluster"),
    ],
)
def test_what_cannot_be_derived_is_refused_in_the_state(
    limit: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _spec([limit], cluster="eu-1")


def test_validate_refuses_a_derived_label_the_stack_does_not_ship_at_its_line() -> None:
    text = (
        "version: 1\n"
        "workspace:\n"
        "  id: ws-1\n"
        "  label_set_limits:\n"
        "    - derive: [cluster, env]\n"
        "prometheus:\n"
        "  external_labels: {cluster: eu-1}\n"
    )
    with pytest.raises(SpecError) as e:
        load_spec(text, "/etc/ampd/state.yml")
    [problem] = e.value.problems
    assert (problem.line, problem.column) == (5, 25), problem
    assert "'env' is not one of prometheus.external_labels (cluster)" in str(problem)
