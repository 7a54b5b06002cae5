"""What a look at a remote state ends in, for :class:`ampd.source.state.StateSource`: a
good version accepted (and cached), a bad one rejected, a destructive one held, a local
copy that failed, a fetch that failed; and the last good copy on disk. The attributes
are the source's; the looking itself is in ``ampd.source.state``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from ampd.errors import AmpdError, Problem, SpecError
from ampd.gateways.statesource import SourceError, SourceRef
from ampd.source.copies import CacheUnreadable, LocalCopies
from ampd.source.docs import Doc, Good, combo_hash, referenced_files, why
from ampd.source.status import Held, LocalCopyFailed
from ampd.spec.load import LoadedSpec

log = structlog.get_logger()

Validate = Callable[[LoadedSpec], list[Problem]]
RAN_KEPT = 20  # good versions remembered: going back to one of them is a rollback


class Outcomes:
    """The state a remote source keeps between looks, and how each look's end changes it."""

    ref: SourceRef
    cache_dir: Path | None
    _validate: Validate
    _now: Callable[[], float]
    _copies: LocalCopies
    _good: Good | None = None
    _bad: dict[str, str]  # hash of a bad state + its files -> first error
    _seen: dict[SourceRef, Doc]  # the newest version of each document
    _seen_files: list[SourceRef]  # what the newest state names beside it
    _error: SpecError | None = None  # the newest version's problems, if any
    _unreachable: str | None = None  # why the last look failed to read
    _unreachable_reason = "Unreachable"
    _error_reason = "Invalid"  # or LocalCopyFailed: tried again with backoff
    _local_failed = False
    _held: Held | None = None  # a destructive version not applied
    _cache_problem: str | None = None  # the cached copy cannot be read or written
    _ran: list[str]  # keys of the good versions that ran here, newest last (RAN_KEPT)

    @property
    def name(self) -> str:
        return str(self.ref)

    def _accept(self, good: Good) -> None:
        first = self._good is None
        self._good = good
        self._remember(good)
        self._set_error(None)
        log.info(
            "state_source.loaded",
            source=self.name,
            version=good.state.version,
            sha256=good.loaded.sha256[:12],
            first=first,
        )
        self._save_cache()

    def _reject(self, state: Doc, files: Mapping[str, Doc], err: SpecError) -> bool:
        self._bad[combo_hash(state, files)] = str(err).splitlines()[0]
        self._set_error(err)
        (log.error if self._copies.keeps_copy else log.debug)(
            "state_source.invalid",
            source=self.name,
            version=state.version,
            problems=[str(p) for p in err.problems],
            running=self._good.state.version if self._good else None,
        )
        return False

    def _hold(self, state: Doc, reasons: list[str]) -> bool:
        self._held = Held(state.version, tuple(reasons))
        self._set_error(None)
        (log.error if self._copies.keeps_copy else log.debug)(
            "state_source.held",
            source=self.name,
            version=state.version,
            changes=reasons,
            running=self._good.state.version if self._good else None,
        )
        return False

    def _copy_failed(self, state: Doc, loaded: LoadedSpec, e: LocalCopyFailed) -> bool:
        """Not this version's fault: reported like a bad version (the running one stays)
        but looked at again, with backoff, until the copies can be written."""
        loc = {raw: loc for loc, raw in referenced_files(loaded)}.get(e.raw)
        problem = (
            loaded.problem(loc, f"{e}; trying again")
            if loc is not None
            else Problem(self.name, 1, 1, "", f"{e}; trying again")
        )
        self._set_error(SpecError([problem]))
        self._error_reason = "LocalCopyFailed"
        self._local_failed = True
        self._seen.pop(state.ref, None)  # the next look fetches and considers it again
        (log.error if self._copies.keeps_copy else log.debug)(
            "state_source.copy_failed", source=self.name, version=state.version, error=str(e)
        )
        return False

    def _fetch_failed(self, e: SourceError) -> bool:
        self._unreachable = e.reason if e.ref == self.ref else str(e)
        if e.unreachable:
            self._unreachable_reason = e.condition_reason or "Unreachable"
            (log.warning if self._copies.keeps_copy else log.debug)(
                "state_source.unreachable", source=self.name, error=str(e)
            )
            return False
        self._unreachable_reason = "FetchFailed"  # missing, denied, too large
        self._seen.pop(e.ref, None)  # a recreated parameter starts again at version 1
        (log.error if self._copies.keeps_copy else log.debug)(
            "state_source.failed", source=self.name, error=str(e)
        )
        return False

    def _set_error(self, err: SpecError | None) -> None:
        self._error = err

    # -- the cache ----------------------------------------------------------------------

    def _save_cache(self) -> None:
        if self.cache_dir is None or self._good is None or not self._copies.keeps_copy:
            return
        try:
            self._copies.save(self.name, self._good, self._now())
        except (AmpdError, OSError) as e:
            where = self.cache_dir
            self._cache_problem = f"cannot write the last good copy under {where}: {why(e)}"
            log.error("state_source.cache_failed", source=self.name, error=self._cache_problem)
            return
        self._cache_problem = None

    def _remember(self, good: Good) -> None:
        key = good.key
        kept = [k for k in self._ran if k != key]
        self._ran = [*kept[len(kept) - RAN_KEPT + 1 :], key]

    def _load_cache(self) -> None:
        try:
            good = self._copies.load(self.ref, self.name)
        except CacheUnreadable as e:
            self._cache_problem = str(e)
            log.error("state_source.cache_unreadable", source=self.name, error=str(e))
            return
        if good is None or self._validate(good.loaded):
            return
        self._good = good
        self._remember(good)
        state, files = good.state, good.files
        self._seen = {state.ref: Doc(state.ref, state.version, state.data)}
        self._seen.update({d.ref: Doc(d.ref, d.version, d.data) for d in files.values()})
        self._seen_files = sorted({d.ref for d in files.values()})
        log.info("state_source.cached", source=self.name, version=state.version)
