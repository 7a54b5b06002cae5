"""One exhaustive ``match`` over the closed :class:`~ampd.core.Action` enum.

Every executor names what it does for each action it supports; an action it does not
name is refused loudly (``PermanentError``), never mistaken for another. ``NOOP`` does
nothing. mypy proves through ``assert_never`` that no member is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_never

from ampd.core import Action, Change
from ampd.errors import PermanentError

Effect = Callable[[], object] | None  # what the effect returns is not used


def refuse(change: Change) -> PermanentError:
    return PermanentError(
        f"{change.key}: action {change.action.value} does not apply to {change.key.kind.value}"
    )


def by_action(
    change: Change,
    *,
    create: Effect = None,
    update: Effect = None,
    delete: Effect = None,
    restart: Effect = None,
    reload: Effect = None,
) -> None:
    """Run the effect for ``change.action``; ``replace`` falls back to ``update``."""
    effect: Effect
    match change.action:
        case Action.NOOP:
            return
        case Action.CREATE:
            effect = create
        case Action.UPDATE:
            effect = update
        case Action.REPLACE:
            effect = update
        case Action.DELETE:
            effect = delete
        case Action.RESTART:
            effect = restart
        case Action.RELOAD:
            effect = reload
        case _ as never:
            assert_never(never)
    if effect is None:
        raise refuse(change)
    effect()
