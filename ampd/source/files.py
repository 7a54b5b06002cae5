"""The files a remote state names beside itself, fetched from inside its own prefix.

A name that leaves the state's SSM path / S3 key prefix (``..``, absolute names, other
``ssm:``/``s3://`` names) is a problem at its position and is never asked for. A file
unchanged since the last look is taken from what was seen then (``known`` versions make
the fetcher skip its body).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ampd.errors import Problem
from ampd.gateways.statesource import Fetched, SourceError, SourceRef
from ampd.source.docs import Doc, referenced_files
from ampd.spec.load import LoadedSpec

__all__ = ["Fetcher", "NamedFiles", "Paced", "fetch_files", "take"]


class Fetcher(Protocol):
    def fetch(
        self, refs: Sequence[SourceRef], known: Mapping[SourceRef, str]
    ) -> dict[SourceRef, Fetched | SourceError]: ...


@runtime_checkable
class Paced(Protocol):
    """A fetcher whose server says when it may look again (AppConfig's Data API)."""

    def pace(self, seconds: float) -> None:
        """The poll interval the state asks for."""
        ...

    def wait_before(self, refs: Sequence[SourceRef]) -> float:
        """Seconds until the server lets the next look read ``refs``."""
        ...


def take(seen: MutableMapping[SourceRef, Doc], result: Fetched | SourceError) -> Doc:
    """The document, from this fetch or (unchanged) from the last one seen."""
    if isinstance(result, SourceError):
        raise result
    if result.data is None:
        doc = seen[result.ref]
        doc.version = result.version
        return doc
    doc = Doc(result.ref, result.version, result.data)
    seen[result.ref] = doc
    return doc


@dataclass
class NamedFiles:
    refs: list[SourceRef] = field(default_factory=list)  # what the state names, in order
    files: dict[str, Doc] = field(default_factory=dict)  # name as written -> its document
    problems: list[Problem] = field(default_factory=list)


def fetch_files(
    ref: SourceRef,
    loaded: LoadedSpec,
    got: Mapping[SourceRef, Fetched | SourceError],
    fetcher: Fetcher,
    seen: MutableMapping[SourceRef, Doc],
) -> NamedFiles:
    """Fetch (or reuse from ``got``) every file ``loaded`` names; an unreachable source
    raises its SourceError, anything else becomes a problem at the file's position."""
    named = referenced_files(loaded)
    out = NamedFiles()
    wanted: dict[str, SourceRef] = {}
    for loc, raw in named:  # only names inside the state's own prefix are asked for
        try:
            wanted[raw] = ref.beside(raw)
        except ValueError as e:
            out.problems.append(loaded.problem(loc, str(e)))
    out.refs = sorted(set(wanted.values()))
    fetched = dict(got)
    missing = [r for r in out.refs if r not in got]
    if missing:
        known = {r: seen[r].version for r in missing if r in seen}
        fetched.update(fetcher.fetch(missing, known))
    for loc, raw in named:
        file_ref = wanted.get(raw)
        if file_ref is None:
            continue
        result = fetched[file_ref]
        if isinstance(result, SourceError):
            if result.unreachable:
                raise result
            out.problems.append(loaded.problem(loc, str(result)))
            continue
        out.files[raw] = take(seen, result)
    return out
