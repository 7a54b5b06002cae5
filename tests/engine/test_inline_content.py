"""Rules and the alert manager configuration written in the state itself (``content``)
instead of a file beside it: one document, so one AppConfig deployment or SSM version
carries the state and its rules, and a rollback takes both back. Checked as their files
are (promtool, the alert manager's route), positioned at ``content``, and pushed to AMP
as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ampd.aws.plan.desired import desired_workspace_children
from ampd.core import Kind, ResourceKey
from ampd.errors import SpecError
from ampd.source.specfile import load_and_check
from ampd.spec.models import StateSpec
from ampd.spec.workspace import INLINE_MAX
from tests.harness.prom import prometheus_available

RULES = "groups:\n  - name: node\n    rules:\n      - record: up:sum\n        expr: sum(up)\n"
ALERTS = "route:\n  receiver: default\nreceivers:\n  - name: default\n"


def indent(text: str) -> str:
    return "".join(f"        {line}\n" for line in text.splitlines())


def state(rules: str, alerts: str = ALERTS) -> str:
    return (
        "version: 1\n"
        "workspace:\n"
        "  id: ws-1\n"
        "  rule_groups:\n"
        "    - name: node\n"
        "      content: |\n"
        f"{indent(rules)}"
        "  alertmanager:\n"
        "    content: |\n"
        f"{indent(alerts)}"
    )


@pytest.mark.parametrize(
    ("group", "why"),
    [
        ({"name": "node"}, "needs file (beside the state) or content"),
        ({"name": "node", "file": "rules.yml", "content": RULES}, "not both"),
    ],
)
def test_a_rule_group_takes_a_file_or_its_content_one_of_them(
    group: dict[str, str], why: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(why)):
        StateSpec.model_validate({"version": 1, "workspace": {"id": "w", "rule_groups": [group]}})


def test_inline_rules_and_alert_manager_are_valid_and_name_no_file(tmp_path: Path) -> None:
    path = tmp_path / "state.yml"
    path.write_text(state(RULES))
    loaded = load_and_check(path, run_promtool=prometheus_available())
    assert loaded.spec.named_files() == ()  # nothing to watch, fetch or read beside it


@pytest.mark.skipif(not prometheus_available(), reason="needs promtool (Debian's prometheus)")
def test_bad_inline_rules_are_refused_at_their_content(tmp_path: Path) -> None:
    path = tmp_path / "state.yml"
    path.write_text(state(RULES.replace("sum(up)", "sum(up")))
    with pytest.raises(SpecError) as e:
        load_and_check(path)
    [problem] = e.value.problems
    assert problem.path == "workspace.rule_groups[0].content" and problem.line == 6, problem
    assert "promtool check rules failed" in problem.message
    assert "unclosed left parenthesis" in problem.message and "/dev/stdin" not in problem.message


def test_an_inline_alert_manager_without_a_route_is_refused_at_its_content(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.yml"
    path.write_text(state(RULES, alerts="receivers:\n  - name: default\n"))
    with pytest.raises(SpecError) as e:
        load_and_check(path, run_promtool=False)
    [problem] = e.value.problems
    assert problem.path == "workspace.alertmanager.content"
    assert "needs a top-level route" in problem.message


def test_amp_gets_the_content_as_written() -> None:
    spec = StateSpec.model_validate(
        {
            "version": 1,
            "workspace": {
                "id": "ws-1",
                "rule_groups": [{"name": "node", "content": RULES}],
                "alertmanager": {"content": ALERTS},
            },
        }
    )
    ws_arn = "arn:aws:aps:eu-west-1:123456789012:workspace/ws-1"
    found = desired_workspace_children(spec, {}, ws_arn)  # no file read at all
    assert found.errors == {}
    by_key = {d.key: d.fields for d in found.resources}
    assert by_key[ResourceKey(Kind.RULE_GROUP, "node")]["data"] == RULES
    assert by_key[ResourceKey(Kind.ALERTMANAGER, spec.stack)]["data"] == ALERTS


def test_inline_content_is_bounded() -> None:
    """A fleet-wide document cannot make every host hold (and push) an unbounded string."""
    big = "#" * (INLINE_MAX + 1)
    with pytest.raises(ValidationError, match="at most 200000 characters"):
        StateSpec.model_validate(
            {"version": 1, "workspace": {"id": "w", "alertmanager": {"content": big}}}
        )
