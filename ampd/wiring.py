"""Choose and build the effectful collaborators: runtime, AWS side, instance facts, and
the one value that may write: :class:`Writers`."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ampd.aws.gateway.client import AwsGateway, api_call_counts
from ampd.aws.side.side import AwsSide
from ampd.engine.retry import RetryBook
from ampd.errors import SpecError
from ampd.gateways import imds
from ampd.gateways.files import FileWriter
from ampd.gateways.runtime import ProcessControl, Runtime
from ampd.gateways.store import Store, StoreView
from ampd.gateways.supervisor import Supervisor
from ampd.gateways.systemd import SystemdRuntime, running_under_systemd
from ampd.source.specfile import read_state_file
from ampd.spec.load import load_spec


@dataclass(frozen=True)
class Writers:
    """The capability to change anything: ampd.json, processes and files (and AWS).

    Built only by the commands that apply (``ampd run``, ``ampd apply``) with
    :func:`make_writers`; ``ampd plan`` and ``ampd render`` never build one, and a side
    can write only through the one it is handed (``ampd.engine.side``)."""

    store: Store
    processes: ProcessControl
    files: FileWriter


def make_writers(store_path: Path, runtime: ProcessControl) -> Writers:
    return Writers(store=Store(store_path), processes=runtime, files=FileWriter())


def self_command() -> str:
    """How children call back into ampd (``ampd proxy``)."""
    env = os.environ.get("AMPD_SELF")
    if env:
        return env
    argv0 = Path(sys.argv[0])
    if argv0.name == "ampd" and argv0.exists():
        return str(argv0.absolute())
    return shutil.which("ampd") or "/usr/bin/ampd"


def _requested_runtime(state_path: Path) -> str:
    try:
        return load_spec(read_state_file(state_path), str(state_path)).spec.runtime
    except SpecError:  # an invalid file at start-up still gets a runtime
        return "auto"


def runtime_name(state_path: Path, requested: str | None = None) -> str:
    """ "systemd" or "supervisor": what :func:`make_runtime` builds here, for the commands
    that only need to know (``ampd render`` renders whom the proxy signs for)."""
    wanted = os.environ.get("AMPD_RUNTIME") or requested or _requested_runtime(state_path)
    if wanted == "systemd" or (wanted == "auto" and running_under_systemd()):
        return "systemd"
    return "supervisor"


def make_runtime(
    state_path: Path, on_exit: Callable[[str], None], requested: str | None = None
) -> Runtime:
    """``requested`` is the spec's ``runtime`` when the caller has already loaded it."""
    if runtime_name(state_path, requested) == "systemd":
        return SystemdRuntime(on_exit=on_exit)
    return Supervisor(on_exit=on_exit)


def make_aws(store: StoreView, book: RetryBook) -> AwsSide:
    return AwsSide(AwsGateway, store, book)


__all__ = [
    "Writers",
    "api_call_counts",
    "imds",
    "make_aws",
    "make_runtime",
    "make_writers",
    "runtime_name",
    "self_command",
]
