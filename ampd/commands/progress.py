"""What ``ampd apply`` is waiting for, shown while it waits, as ``terraform apply`` does:

    aws.workspace/prod: still creating... [40s elapsed]

A terminal gets one live line, rewritten in place; a pipe or a file gets a plain line
per resource every ``EVERY`` seconds (and when what is pending changes), so a log shows
the wait without a line per poll.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TextIO

EVERY = 10.0  # seconds between two plain progress lines for the same resource


def verb(message: str) -> str:
    """What AWS is doing to a resource, from its status message."""
    if "waiting for" in message:
        return "waiting for the workspace"
    for state, words in (
        ("CREATING", "still creating"),
        ("UPDATING", "still updating"),
        ("DELETING", "still destroying"),
    ):
        if state in message:
            return words
    return "still in progress"


class Progress:
    """``update`` after every pass that left work in progress; ``done`` at the end."""

    def __init__(
        self, out: TextIO, *, live: bool, clock: Callable[[], float], every: float = EVERY
    ) -> None:
        self._out = out
        self._live = live
        self._clock = clock
        self._every = every
        self._since: dict[str, float] = {}  # key -> when it was first seen pending
        self._said: dict[str, float] = {}  # key -> when a plain line last named it
        self._drawn = False

    def update(self, pending: Sequence[tuple[str, str]]) -> None:
        """``pending``: (resource key, status message) of what AWS is still working on."""
        now = self._clock()
        keys = {key for key, _ in pending}
        self._since = {k: v for k, v in self._since.items() if k in keys}
        lines = []
        for key, message in pending:
            start = self._since.setdefault(key, now)
            line = f"{key}: {verb(message)}... [{now - start:.0f}s elapsed]"
            due = key not in self._said or now - self._said[key] >= self._every
            if self._live or due:
                lines.append(line)
                self._said[key] = now
        if not lines:
            return
        if self._live:
            self._out.write("\r\x1b[K" + "; ".join(lines))
            self._drawn = True
        else:
            self._out.write("".join(f"{line}\n" for line in lines))
        self._out.flush()

    def done(self) -> None:
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False
