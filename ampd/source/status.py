"""What a remote state source reports: its conditions (StateSourceReachable,
StateSourceValid, StateSourceHeld, StateSourceCached), and the two outcomes of a look
that are not a bad document: a version held by the destructive-change guard, and a file
that could not be copied to disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ampd.core import Condition, ConditionStatus
from ampd.errors import AmpdError, SpecError
from ampd.source.docs import bare_version, why

__all__ = ["Held", "LocalCopyFailed", "SourceView", "source_conditions"]


@dataclass(frozen=True)
class Held:
    """A valid version the destructive-change guard keeps off this running host."""

    version: str
    reasons: tuple[str, ...]


class LocalCopyFailed(AmpdError):
    """A fetched file could not be written where the checks and Prometheus read it."""

    def __init__(self, raw: str, where: Path, cause: BaseException) -> None:
        self.raw = raw
        super().__init__(f"{raw}: cannot keep a local copy under {where}: {why(cause)}")


@dataclass(frozen=True)
class SourceView:
    """The facts a StateSource reports from."""

    name: str
    good_version: str | None  # the version running, if any
    unreachable: str | None
    unreachable_reason: str
    error: SpecError | None
    error_reason: str
    held: Held | None
    keeps_copy: bool  # opened with a file writer (run, apply): the cache is kept
    cache_problem: str | None


def _running(v: SourceView) -> str:
    if v.good_version is None:
        return ""
    return f"; running the last good version ({v.good_version})"


def source_conditions(v: SourceView) -> list[Condition]:
    reach = (
        Condition(
            "StateSourceReachable",
            ConditionStatus.FALSE,
            v.unreachable_reason,
            f"{v.name}: {v.unreachable}" + _running(v),
        )
        if v.unreachable
        else Condition("StateSourceReachable", ConditionStatus.TRUE, "Fetched", v.name)
    )
    if v.error is not None:
        first = str(v.error).splitlines()[0]
        valid = Condition(
            "StateSourceValid", ConditionStatus.FALSE, v.error_reason, first + _running(v)
        )
    elif v.good_version is not None:
        valid = Condition(
            "StateSourceValid", ConditionStatus.TRUE, "Valid", f"{v.name} version {v.good_version}"
        )
    else:
        valid = Condition("StateSourceValid", ConditionStatus.UNKNOWN, "NotFetched", "")
    return [reach, valid, _held(v), *_cached(v)]


def _held(v: SourceView) -> Condition:
    if v.held is None:
        return Condition("StateSourceHeld", ConditionStatus.FALSE, "NotHeld", "")
    version = bare_version(v.held.version)
    return Condition(
        "StateSourceHeld",
        ConditionStatus.TRUE,
        "Destructive",
        f"{v.name} version {version} held: {'; '.join(v.held.reasons)}{_running(v)};"
        " to apply it, publish it with rollout: {allow_destructive: true}"
        f" or run: ampd apply --accept {version}",
    )


def _cached(v: SourceView) -> list[Condition]:
    if not v.keeps_copy:
        return []
    if v.cache_problem is not None:
        why_not = v.cache_problem
        return [Condition("StateSourceCached", ConditionStatus.FALSE, "CacheFailed", why_not)]
    return [Condition("StateSourceCached", ConditionStatus.TRUE, "Cached", "")]
