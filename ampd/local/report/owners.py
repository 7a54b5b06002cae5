"""The ListenersOwned condition: every managed port is held by its process' own user. Pure.

ampd believes a loopback server only after checking who owns its socket
(ampd.gateways.http); a port held by anyone else is named here with the squatter's uid,
and ampd sends it nothing: no credentials, no health, no remote-write verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ampd.core import Condition, ConditionStatus

__all__ = ["CONDITION", "Squat", "listeners_condition"]

CONDITION = "ListenersOwned"


@dataclass(frozen=True)
class Squat:
    """A managed process' port held by another user."""

    process: str
    listen: str
    uid: int  # who holds it (-1: a connection's far end that could not be told)
    user: str
    expected_uid: int
    expected_user: str


class SquatLike(Protocol):
    @property
    def process(self) -> str: ...
    @property
    def listen(self) -> str: ...
    @property
    def uid(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def expected_uid(self) -> int: ...
    @property
    def expected_user(self) -> str: ...


def squat_text(s: SquatLike) -> str:
    who = f"uid {s.uid} ({s.user})" if s.uid >= 0 else "a user that cannot be told"
    return (
        f"{s.listen} ({s.process}) is held by {who}, not {s.expected_user} "
        f"(uid {s.expected_uid}): ampd sends it nothing"
    )


def listeners_condition(squatted: Mapping[str, SquatLike], checked: bool) -> Condition | None:
    """False naming every squatter; True when ports were checked and all are owned; None
    when there was nothing to check."""
    if squatted:
        text = "; ".join(squat_text(squatted[name]) for name in sorted(squatted))
        return Condition(CONDITION, ConditionStatus.FALSE, "Squatted", text)
    if not checked:
        return None
    return Condition(CONDITION, ConditionStatus.TRUE, "Owned")
