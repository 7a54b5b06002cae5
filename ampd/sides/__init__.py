"""The two sides ampd reconciles, one shape for both.

:class:`~ampd.sides.aws.AwsSide` (workspace, its children, IAM) and
:class:`~ampd.sides.local.LocalSide` (generated files, managed processes) each read
everything they need, plan, act when asked to, and return a
:class:`~ampd.core.SideResult`. The pass (``ampd.daemon.reconcile``) composes them.
"""

from __future__ import annotations

from typing import Protocol

from ampd.core import SideResult
from ampd.sides.facts import Facts
from ampd.spec.models import StateSpec

__all__ = ["Facts", "Side", "SideResult"]


class Side(Protocol):
    def reconcile(self, spec: StateSpec, facts: Facts, *, apply: bool) -> SideResult: ...
