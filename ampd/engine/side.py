"""The two sides ampd reconciles, one shape for both: observe, plan, apply, report.

:class:`~ampd.aws.side.side.AwsSide` (workspace, its children, IAM) and
:class:`~ampd.local.side.side.LocalSide` (generated files, managed processes) each

- ``observe(spec, facts) -> Seen``: read everything the side needs, write nothing;
- ``plan(spec, facts, seen) -> Plan``: decide, purely, from what was seen;
- ``apply(plan, seen, writers) -> Done``: carry out that plan value -- and only it -- with
  the writers it is handed (and read back what it wrote);
- ``report(spec, facts, seen, plan, done) -> SideResult``: say, purely, what is.

A side cannot write unless it is handed its writers: ``ampd plan`` and ``ampd render``
never build them (``ampd.wiring.Writers``), so no plan reaches AWS, a process or a file.
:func:`run_side` is the one pass over a side that the daemon, ``apply`` and ``plan``
share.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from ampd.core import SideResult
from ampd.engine.facts import Facts
from ampd.spec.models import StateSpec

__all__ = ["Facts", "Side", "SideResult", "run_side"]

S = TypeVar("S")  # what observe saw
P = TypeVar("P")  # the side's plan, the value apply consumes
D = TypeVar("D")  # what apply did: outcomes, and what it read back
W_contra = TypeVar("W_contra", contravariant=True)  # the writers the side needs to apply
W = TypeVar("W")


class Side(Protocol[S, P, D, W_contra]):
    @property
    def name(self) -> str:
        """``aws`` or ``local``: names the side in logs and conditions."""
        ...

    def observe(self, spec: StateSpec, facts: Facts) -> S: ...

    def plan(self, spec: StateSpec, facts: Facts, seen: S) -> P: ...

    def apply(self, plan: P, seen: S, writers: W_contra) -> D: ...

    def report(
        self, spec: StateSpec, facts: Facts, seen: S, plan: P, done: D | None
    ) -> SideResult: ...


def run_side(
    side: Side[S, P, D, W], spec: StateSpec, facts: Facts, writers: W | None
) -> SideResult:
    """One pass over one side. Without writers (a plan) nothing is applied: the side's
    report is the plan and what was seen."""
    seen = side.observe(spec, facts)
    plan = side.plan(spec, facts, seen)
    done = side.apply(plan, seen, writers) if writers is not None else None
    return side.report(spec, facts, seen, plan, done)
