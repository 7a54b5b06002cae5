"""``ampd apply`` says what it waits for, as ``terraform apply`` does."""

from __future__ import annotations

import io

from ampd.commands.progress import Progress, verb
from tests.harness.clock import FakeClock

WS = ("aws.workspace/prod", "created; AWS reports CREATING")
RG = ("aws.rule_group/node", "waiting for the workspace (CREATING)")


def test_a_pipe_gets_a_plain_line_per_resource_every_ten_seconds() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(out, live=False, clock=clock)
    progress.update([WS, RG])
    for _ in range(4):  # polls every 3 s: no line until 10 s have passed
        clock.advance(3)
        progress.update([WS, RG])
    clock.advance(10)
    progress.update([WS])  # the rule group is no longer pending
    progress.done()
    assert out.getvalue().splitlines() == [
        "aws.workspace/prod: still creating... [0s elapsed]",
        "aws.rule_group/node: waiting for the workspace... [0s elapsed]",
        "aws.workspace/prod: still creating... [12s elapsed]",
        "aws.rule_group/node: waiting for the workspace... [12s elapsed]",
        "aws.workspace/prod: still creating... [22s elapsed]",
    ]


def test_a_terminal_gets_one_live_line_rewritten_in_place() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress(out, live=True, clock=clock)
    progress.update([WS])
    clock.advance(1)
    progress.update([WS])
    progress.done()
    assert out.getvalue() == (
        "\r\x1b[Kaws.workspace/prod: still creating... [0s elapsed]"
        "\r\x1b[Kaws.workspace/prod: still creating... [1s elapsed]\n"
    )


def test_nothing_pending_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress(out, live=True, clock=FakeClock())
    progress.update([])
    progress.done()
    assert out.getvalue() == ""


def test_the_verb_follows_what_aws_reports() -> None:
    assert verb("updated; AWS reports UPDATING") == "still updating"
    assert verb("AWS reports DELETING") == "still destroying"
    assert verb("waiting for the workspace (CREATING)") == "waiting for the workspace"
    assert verb("PROGRESSING") == "still in progress"
