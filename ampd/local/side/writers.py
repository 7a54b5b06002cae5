"""What the local side needs to apply: ampd.json, the processes' control, the file
writer. ``ampd.wiring.Writers`` is one (structurally); ``ampd plan`` and ``ampd render``
never build it, so a plan reaches no file, process or record."""

from __future__ import annotations

from typing import Protocol

from ampd.gateways.files import FileWriter
from ampd.gateways.runtime import ProcessControl
from ampd.gateways.store import Store

__all__ = ["LocalWriters"]


class LocalWriters(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def processes(self) -> ProcessControl: ...

    @property
    def files(self) -> FileWriter: ...
