"""Pure: the series in a Prometheus exposition (text format or OpenMetrics)."""

from __future__ import annotations

__all__ = ["count_series", "sample_sum"]


def _series_key(line: str) -> str:
    brace = line.find("{")
    space = line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        close = line.rfind("}")
        return line[: close + 1] if close > brace else line
    return line if space == -1 else line[:space]


def count_series(text: str) -> int:
    """The distinct series of the sample lines (comments, ``# EOF`` and blank lines are
    not samples). A body cut at a byte cap loses its last, partial line."""
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        seen.add(_series_key(line))
    return len(seen)


def sample_sum(text: str, name: str) -> float | None:
    """The sum of metric ``name``'s samples over all its label sets (None: not there)."""
    total, found = 0.0, False
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith(name) or line.startswith("#"):
            continue
        rest = line[len(name) :]
        if rest[:1] not in ("{", " "):
            continue
        value = rest.rpartition("}")[2] if rest.startswith("{") else rest
        try:
            total += float(value.split()[0])
        except (IndexError, ValueError):
            continue
        found = True
    return total if found else None
