"""A state document followed in SSM Parameter Store, S3 or AppConfig, with a last good copy
on disk (docs/fleet.md tells the whole story).

:class:`StateSource` is what the daemon holds instead of a path when ``--state`` is
``ssm:NAME``, ``s3://BUCKET/KEY`` or ``appconfig:APP/ENV/PROFILE``:

- ``current()`` (``load()``) is the last good spec, polling first when a poll is due. The
  files it names are fetched from beside it, inside its own prefix (a name outside is
  refused with its position), and point at local copies (a copy that cannot be written
  is reported, LocalCopyFailed, and tried again).
- A valid version that would take Prometheus, remote_write, the workspace or most scrape
  jobs away from a running host is held (:mod:`ampd.source.guard`) until it says
  ``rollout: {allow_destructive: true}`` or an operator accepts it (:meth:`accept`).
- ``poll()`` looks once; a new version is validated exactly like a local file and, when
  good, becomes current and (with a file writer: ``run``, ``apply``) is cached, mode 0600,
  under ``<state dir>/source/``. A bad version is remembered by hash and not retried until
  the document changes (``StateSourceValid=False``); an unreachable source runs the cached
  copy (``StateSourceReachable=False``).
- ``look_now()`` (SIGHUP) makes the next pass look at once -- but never sooner than a
  server that paces its readers allows (AppConfig's NextPollIntervalInSeconds).
- ``next_poll_in()`` is the time to the next look (:mod:`ampd.source.polling`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from ampd.core import Condition
from ampd.errors import AmpdError, Problem, SpecError
from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import (
    Fetched,
    SourceError,
    SourceRef,
    parse_ref,
)
from ampd.source.copies import LocalCopies
from ampd.source.docs import (
    Doc,
    Good,
    bare_version,
    combo_hash,
    why,
)
from ampd.source.files import Fetcher, Paced, fetch_files, take
from ampd.source.guard import held_back
from ampd.source.outcomes import Outcomes, Validate
from ampd.source.polling import DEFAULT_INTERVAL, next_wait
from ampd.source.pushed import read_pushed_files
from ampd.source.status import Held, LocalCopyFailed, SourceView, source_conditions
from ampd.spec.load import LoadedSpec, load_spec
from ampd.spec.models import duration_seconds

log = structlog.get_logger()


class StateSource(Outcomes):
    """The spec from a remote document. ``poll``/``current`` may be called from different
    threads (a loop's timer and the pass): one look at a time."""

    def __init__(
        self,
        location: str | SourceRef,
        cache_dir: Path | None,
        fetcher: Fetcher,
        *,
        validate: Validate,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        now: Callable[[], float] = time.time,
        files: FileWriter | None = None,
    ) -> None:
        self.ref = location if isinstance(location, SourceRef) else parse_ref(location)
        self.cache_dir = cache_dir  # None: no cache at all (validate)
        # a file writer (run, apply) keeps the last good copy; without one (plan, render,
        # validate) the cache is only read and nothing is written but a scratch directory
        # for the checks, removed by close()
        self._files = files
        self._fetcher = fetcher
        self._validate = validate
        self._clock = clock
        self._now = now
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrets)
        self._good: Good | None = None
        self._bad: dict[str, str] = {}  # hash of a bad state + its files -> first error
        self._ran: list[str] = []
        self._seen: dict[SourceRef, Doc] = {}  # the newest version of each document
        self._seen_files: list[SourceRef] = []  # what the newest state names beside it
        self._error: SpecError | None = None  # the newest version's problems, if any
        self._unreachable: str | None = None  # why the last look failed to read
        self._unreachable_reason = "Unreachable"
        self._error_reason = "Invalid"  # or LocalCopyFailed: tried again with backoff
        self._local_failed = False
        self._held: Held | None = None  # a destructive version not applied
        self._cache_problem: str | None = None  # the cached copy cannot be read or written
        self._copies = LocalCopies(cache_dir, files)
        self._pushed: tuple[Good, dict[str, bytes | None]] | None = None
        self._due = 0.0  # clock value; 0: poll at first use
        self._polls = 0
        self._looked_at: float | None = None  # wall clock of the last look
        self._failures = 0  # looks in a row that could not read the source
        self._lock = threading.RLock()
        self.transitions: dict[str, float] = {}
        if cache_dir is not None:
            self._load_cache()

    # -- the daemon's interface (ampd.engine.source.SpecSource) ---------------------------

    remote = True

    def __str__(self) -> str:
        return self.name

    def watched(self) -> Path:
        """The local cached copy: what a file watcher watches (a new version lands there)."""
        return (self.cache_dir or Path("/nonexistent")) / "state.yml"

    def load(self) -> LoadedSpec:
        return self.current()

    def pushed_files(self) -> Mapping[str, bytes | None]:
        """The rule and alert manager files of the current good version, read from their
        local copies once per version."""
        good = self._good
        if good is None:
            return {}
        if self._pushed is None or self._pushed[0] is not good:
            self._pushed = (good, read_pushed_files(good.loaded.spec))
        return dict(self._pushed[1])

    def close(self) -> None:
        self._copies.close()

    def next_poll_in(self) -> float:
        return max(0.0, self._due - self._clock())

    def look_now(self) -> None:
        """The next ``current()`` looks at the source (an operator's reload: a version just
        published goes live without waiting for the poll interval)."""
        with self._lock:
            self._due = 0.0

    def interval(self) -> float:
        if self._good is None:
            return DEFAULT_INTERVAL
        return duration_seconds(self._good.loaded.spec.state_source.poll_interval)

    def current(self) -> LoadedSpec:
        """The last good spec (polling first when a poll is due); SpecError when there is
        none: the one line says which source and why."""
        with self._lock:
            if self._polls == 0 or self.next_poll_in() <= 0:
                self.poll()
            if self._good is not None:
                return self._good.loaded
            if self._error is not None:
                raise self._error
        raise _one(self.name, self._unreachable or "not fetched yet")

    def text(self) -> str:
        """The current good document's text (for callers that parse it themselves)."""
        self.current()
        assert self._good is not None
        return self._good.state.data.decode()

    def conditions(self) -> list[Condition]:
        good = self._good
        return source_conditions(
            SourceView(
                name=self.name,
                good_version=good.state.version if good is not None else None,
                unreachable=self._unreachable,
                unreachable_reason=self._unreachable_reason,
                error=self._error,
                error_reason=self._error_reason,
                held=self._held,
                keeps_copy=self._copies.keeps_copy,
                cache_problem=self._cache_problem,
            )
        )

    def last_look(self) -> float | None:
        return self._looked_at

    def version(self) -> str | None:
        good = self._good
        return None if good is None else bare_version(good.state.version)

    def accept(self, version: str) -> None:
        """Record that an operator accepts ``version`` (``ampd apply --accept``): the
        destructive-change guard lets exactly that version through, here and in the
        daemon that shares the cache directory."""
        if self._files is None:
            raise AmpdError(f"{self.name}: opened read-only; an acceptance is recorded by apply")
        self._copies.record_acceptance(self._files, self.name, version, self._now())
        log.info("state_source.accepted", source=self.name, version=bare_version(version))

    def _accepted(self, version: str) -> bool:
        return self._copies.accepted(self.name, version)

    def held(self) -> Held | None:
        return self._held

    def poll(self) -> bool:
        """Look once. True when a new good version became current."""
        with self._lock:
            self._polls += 1
            self._looked_at = self._now()
            try:
                return self._poll()
            except SourceError as e:
                return self._fetch_failed(e)
            except (OSError, LocalCopyFailed) as e:  # a local fault not met where expected
                self._set_error(_one(self.name, f"{why(e)}; trying again"))
                self._error_reason = "LocalCopyFailed"
                self._local_failed = True
                self._seen.pop(self.ref, None)  # looked at again at the next look
                return False
            finally:  # the interval of the version now current; sooner after a failure
                failing = self._unreachable is not None or self._local_failed
                self._failures = self._failures + 1 if failing else 0
                wait = next_wait(self.interval(), self._failures, self._rng)
                self._due = self._clock() + max(wait, self._server_wait())

    # -- polling --------------------------------------------------------------------------

    def _server_wait(self) -> float:
        """How long the server asked to wait before the next look (AppConfig's pacing)."""
        paced = self._fetcher if isinstance(self._fetcher, Paced) else None
        return paced.wait_before([self.ref, *self._seen_files]) if paced is not None else 0.0

    def _poll(self) -> bool:
        if isinstance(self._fetcher, Paced) and self._good is not None:
            self._fetcher.pace(self.interval())  # the state's own interval, once known
        refs = [self.ref, *self._seen_files]
        known = {r: self._seen[r].version for r in refs if r in self._seen}
        got = self._fetcher.fetch(refs, known)
        for result in got.values():
            if isinstance(result, SourceError) and result.unreachable:
                raise result
        self._unreachable = None
        if all(isinstance(v, Fetched) and v.data is None for v in got.values()):
            held = self._held  # an operator may have accepted it since the last look
            if held is not None and self._accepted(held.version) and self.ref in self._seen:
                return self._consider(self._seen[self.ref], got)
            return False  # nothing changed since the last look
        state = take(self._seen, got[self.ref])
        return self._consider(state, got)

    def _consider(self, state: Doc, got: Mapping[SourceRef, Fetched | SourceError]) -> bool:
        self._held = None  # a newer version (or this one, accepted) is decided anew
        self._local_failed = False
        self._error_reason = "Invalid"
        try:
            text = state.data.decode("utf-8")
        except UnicodeDecodeError as e:
            return self._reject(state, {}, _one(self.name, f"not UTF-8 text: {e.reason}"))
        try:
            loaded = load_spec(text, self.name)
        except SpecError as e:
            self._seen_files = []
            return self._reject(state, {}, e)
        named = fetch_files(self.ref, loaded, got, self._fetcher, self._seen)
        self._seen_files = named.refs
        files, problems = named.files, named.problems
        key = combo_hash(state, files)
        good = self._good
        if good is not None and key == good.key and not problems:
            good.state.version = state.version  # same content under a new version
            self._set_error(None)
            return False
        if key in self._bad and not problems:
            return False  # the same content was found bad already: not re-validated
        if not problems:
            try:
                loaded = self._copies.localized(loaded, files)
            except LocalCopyFailed as e:
                return self._copy_failed(state, loaded, e)
            problems = self._validate(loaded)
        if problems:
            return self._reject(state, files, SpecError(problems))
        reasons = self._destructive(loaded, state, key)
        if reasons:
            return self._hold(state, reasons)
        self._accept(Good(loaded, Doc(state.ref, state.version, state.data), dict(files)))
        return True

    def _destructive(self, loaded: LoadedSpec, state: Doc, key: str) -> list[str]:
        """Why this valid version must not replace the one running (empty: it may). A
        version this host ran before is never held: going back to it is a rollback (an
        AppConfig alarm's, or an operator's revert), not a surprise."""
        good = self._good
        before = good.loaded.spec if good is not None else None
        reasons, how = held_back(before, loaded.spec, self._accepted(state.version))
        if reasons and how is None and key in self._ran:
            how = "rollback to a version this host ran"
        if how is None:
            return reasons
        log.warning(
            "state_source.destructive_accepted",
            source=self.name,
            version=state.version,
            changes=reasons,
            by=how,
        )
        return []


def _one(name: str, reason: str) -> SpecError:
    return SpecError([Problem(name, 1, 1, "", reason)])
