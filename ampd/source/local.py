"""A state file on this host, as a :class:`~ampd.engine.source.SpecSource`.

``load`` checks the file and every file it names (``StateSpec.named_files()``) only when
one of them changed since the last time (their size, mtime and inode: no YAML and no
``promtool check rules`` on an idle pass); otherwise it answers the last result again:
the same spec, or the same error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ampd.core import Condition
from ampd.errors import SpecError
from ampd.gateways.files import inputs_fingerprint
from ampd.source.pushed import read_pushed_files
from ampd.source.specfile import load_and_check, read_state_file
from ampd.spec.load import LoadedSpec

__all__ = ["FileSource"]


class FileSource:
    remote = False

    def __init__(self, path: Path, *, run_promtool: bool = True) -> None:
        self.path = path
        self._run_promtool = run_promtool
        self._key: str | None = None
        self._result: LoadedSpec | SpecError | None = None
        self._files: dict[str, bytes | None] = {}
        self._good: LoadedSpec | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def watched(self) -> Path:
        return self.path.absolute()

    def inputs(self) -> list[Path]:
        """The state file and every file it names (as last loaded)."""
        spec = self._good.spec if self._good is not None else None
        named = [Path(n.path) for n in spec.named_files()] if spec is not None else []
        return [self.path, *named]

    def load(self) -> LoadedSpec:
        key = inputs_fingerprint(self.inputs())
        if key != self._key or self._result is None:
            self._key = key
            try:
                loaded = load_and_check(self.path, run_promtool=self._run_promtool)
            except SpecError as e:
                self._result = e
            else:
                self._result = self._good = loaded
                self._files = read_pushed_files(loaded.spec)  # as validated
        if isinstance(self._result, SpecError):
            raise self._result
        return self._result

    def pushed_files(self) -> Mapping[str, bytes | None]:
        return dict(self._files)

    def text(self) -> str:
        return read_state_file(self.path)

    def conditions(self) -> Sequence[Condition]:
        return ()

    def last_look(self) -> float | None:
        return None

    def version(self) -> str | None:
        good = self._good
        return None if good is None else "sha256:" + good.sha256[:12]

    def next_poll_in(self) -> float | None:
        return None

    def look_now(self) -> None:
        self._key = None  # checked again, even if nothing seems to have changed

    def close(self) -> None:
        return None
