"""The exception tree.

AmpdError
 ├── SpecError           the state file is invalid; carries every problem found
 ├── PermanentError      retrying against the same desired state cannot help
 │                       (validation, AccessDenied, quota); wait for a new spec
 └── TemporaryError      retry after ``delay`` seconds (throttling, 5xx, network,
                         a workspace still CREATING)
"""

from __future__ import annotations

from dataclasses import dataclass


class AmpdError(Exception):
    """Base of every error ampd raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a state file, pointing at where it is."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        # one problem, one line: a line break in a value or a file name is shown escaped
        return text.replace("\r", "\\r").replace("\n", "\\n")


class SpecError(AmpdError):
    """The state file cannot be used. ``problems`` lists all of them, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))


class PermanentError(AmpdError):
    """Not retried until the desired state changes."""


class TemporaryError(AmpdError):
    """Retried after ``delay`` seconds, with capped exponential backoff on repeats."""

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay
