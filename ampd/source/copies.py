"""Where a remote state's documents are kept on disk: the local copies of the files it
names (under ``<state dir>/source/files/``, or a private scratch directory for commands
that write nothing), the cached last good version, and an operator's acceptance of a
held version. Written as root, everything is handed to the state directory's owner."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import structlog

from ampd.errors import AmpdError, SpecError
from ampd.gateways.files import FileWriter, read_bytes
from ampd.gateways.scratch import give_to_owner_of, remove_scratch, scratch_dir, scratch_write
from ampd.gateways.statesource import SourceRef
from ampd.source.docs import (
    Doc,
    Good,
    bare_version,
    load_cache,
    local_name,
    localized,
    read_acceptance,
    referenced_files,
    save_cache,
    why,
    write_acceptance,
)
from ampd.source.status import LocalCopyFailed
from ampd.spec.load import LoadedSpec, load_spec

__all__ = ["CacheUnreadable", "LocalCopies"]

log = structlog.get_logger()


class CacheUnreadable(AmpdError):
    """The cached copy exists but cannot be read (its owner or mode)."""


class LocalCopies:
    def __init__(self, cache_dir: Path | None, files: FileWriter | None) -> None:
        self.cache_dir = cache_dir  # None: no cache at all (validate)
        # a file writer (run, apply): the copies and the cache are kept under cache_dir;
        # none (plan, render, validate): the cache is only read, and the copies the checks
        # need go to a private scratch directory that close() removes
        self._files = files if cache_dir is not None else None
        self._scratch: Path | None = None

    @property
    def keeps_copy(self) -> bool:
        return self._files is not None

    def files_dir(self) -> Path:
        if self.cache_dir is not None and self._files is not None:
            return self.cache_dir / "files"
        if self._scratch is None:  # read-only use: copies only for the checks
            self._scratch = scratch_dir()
        return self._scratch

    def write(self, doc: Doc) -> Path:
        digest = hashlib.sha256(doc.data).hexdigest()[:16]
        path = self.files_dir() / local_name(digest, doc.ref.name)
        if read_bytes(path) != doc.data:
            if self._files is not None:
                self._files.write(path, doc.data, 0o600)
            else:
                scratch_write(path, doc.data)
        if self._files is not None and self.cache_dir is not None:
            self.hand_over(self.cache_dir, path.parent, path)
        return path

    def close(self) -> None:
        """Remove the scratch directory, if one was made."""
        if self._scratch is not None:
            remove_scratch(self._scratch)
            self._scratch = None

    def hand_over(self, *paths: Path) -> None:
        """As root, give what was written under the state directory to its owner."""
        assert self.cache_dir is not None
        give_to_owner_of(self.cache_dir.parent, *paths)

    def localized(self, loaded: LoadedSpec, files: Mapping[str, Doc]) -> LoadedSpec:
        """The spec pointing at local copies; LocalCopyFailed when one cannot be written
        (a full disk, a directory the daemon may not write, a name too long)."""
        paths: dict[str, Path] = {}
        for raw, doc in files.items():
            try:
                paths[raw] = self.write(doc)
            except (OSError, AmpdError) as e:
                raise LocalCopyFailed(raw, self.files_dir(), e) from e
        return localized(loaded, paths)

    def save(self, name: str, good: Good, now: float) -> None:
        """Cache ``good``; AmpdError/OSError when it cannot be written."""
        cache, files = self.cache_dir, self._files
        assert cache is not None and files is not None
        paths = {raw: self.write(d) for raw, d in good.files.items()}
        save_cache(files, cache, name, good, paths, now)
        self.hand_over(cache, cache / "state.yml", cache / "source.json")

    def load(self, ref: SourceRef, name: str) -> Good | None:
        """The cached last good version of ``ref``, pointing at its local copies; None when
        there is none, it is another source's, or it is unusable (logged), or it names a
        file outside the state's prefix. CacheUnreadable when it cannot be read at all."""
        assert self.cache_dir is not None
        try:
            found = load_cache(self.cache_dir, ref)
            if found is None:
                return None
            state, files = found
            loaded = self.localized(load_spec(state.data.decode("utf-8"), name), files)
        except (ValueError, KeyError, TypeError, AttributeError, SpecError) as e:
            log.warning("state_source.cache_unusable", source=name, error=str(e))
            return None
        except (OSError, AmpdError) as e:  # e.g. left by root (sudo ampd apply), mode 0600
            raise CacheUnreadable(
                f"cannot read the last good copy under {self.cache_dir}: {why(e)}"
                " (written by another user? chown it to the user ampd runs as)"
            ) from e
        for _loc, raw in referenced_files(loaded):
            try:
                ref.beside(raw)
            except ValueError:
                return None  # cached by an older ampd that read outside the prefix
        return Good(loaded, state, files)

    def record_acceptance(self, files: FileWriter, name: str, version: str, now: float) -> None:
        if self.cache_dir is None:
            raise AmpdError(f"{name}: no state directory to record the acceptance in")
        try:
            path = write_acceptance(files, self.cache_dir, name, version, now)
            self.hand_over(self.cache_dir, path)
        except (OSError, AmpdError) as e:
            raise AmpdError(f"{name}: cannot record the acceptance: {why(e)}") from e

    def accepted(self, name: str, version: str) -> bool:
        """Whether an operator accepted exactly this version of ``name``."""
        if self.cache_dir is None:
            return False
        try:
            return read_acceptance(self.cache_dir, name) == bare_version(version)
        except OSError:
            return False
