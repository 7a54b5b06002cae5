"""Where the spec comes from, as the pass sees it: a :class:`SpecSource`, handed in.

A local file (``ampd.source.local.FileSource``) or a remote document followed in SSM or
S3 (``ampd.source.state.StateSource``): the command line opens one and passes it to the
pass, the daemon's watcher and the commands; nothing looks a source up by name. A
source opened for a plan holds no file writer and writes nothing; one opened for ``run``
or ``apply`` keeps its last good copy on disk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ampd.core import Condition
from ampd.spec.load import LoadedSpec

__all__ = ["SpecSource"]


class SpecSource(Protocol):
    @property
    def name(self) -> str:
        """What status and errors call it: the file's path, or ``ssm:NAME``/``s3://B/K``."""
        ...

    @property
    def remote(self) -> bool: ...

    def watched(self) -> Path:
        """The file whose change means a new version may be there (the watcher's)."""
        ...

    def load(self) -> LoadedSpec:
        """The current good spec, checked like ``ampd validate`` checks it; the same
        object while nothing it depends on changed. SpecError when there is none."""
        ...

    def pushed_files(self) -> Mapping[str, bytes | None]:
        """The bytes of the rule and alert manager files of the last good spec, as they
        were validated: what the AWS side may push (None: unreadable)."""
        ...

    def text(self) -> str:
        """The current document's text (start-up reads its ``runtime`` from it)."""
        ...

    def conditions(self) -> Sequence[Condition]: ...

    def last_look(self) -> float | None:
        """When a remote source was last looked at (epoch seconds, whatever was found);
        None for a file (it is watched) or before the first look."""
        ...

    def version(self) -> str | None:
        """The version of the good spec in force: an SSM Version, an S3 ETag, an AppConfig
        VersionLabel (else ``sha256:`` and 12 hex digits of it), a file's ``sha256:...``;
        None while there is none."""
        ...

    def next_poll_in(self) -> float | None:
        """Seconds to the next look at a remote source; None for a file (it is watched)."""
        ...

    def look_now(self) -> None:
        """An operator's reload: the next ``load`` looks at the source at once."""
        ...

    def close(self) -> None:
        """Remove what the source made for itself alone (a scratch directory)."""
        ...
