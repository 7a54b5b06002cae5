"""Choose and build the effectful collaborators: runtime, AWS side, instance facts, and
the one value that may write: :class:`Writers`."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ampd.aws.gateway.client import api_call_counts, make_gateway
from ampd.aws.gateway.writer import AwsWriting
from ampd.aws.side.side import AwsSide
from ampd.engine.factfinder import FactFinder
from ampd.engine.facts import InstanceFacts
from ampd.engine.reconcile import Reconciler
from ampd.engine.retry import RetryBook
from ampd.engine.source import SpecSource
from ampd.errors import SpecError
from ampd.gateways import imds
from ampd.gateways.files import FileWriter
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import ProcessControl, Runtime
from ampd.gateways.store import Store, StoreView
from ampd.gateways.supervisor import Supervisor
from ampd.gateways.systemd import SystemdRuntime, running_under_systemd
from ampd.gateways.users import process_user
from ampd.ingest.gateway import Fetched, owned_metrics
from ampd.ingest.observe import Observer
from ampd.ingest.side import IngestSide
from ampd.local.side.side import LocalSide, OwnWrites
from ampd.source.local import FileSource
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
    aws: AwsWriting


def make_writers(store_path: Path, runtime: ProcessControl) -> Writers:
    return Writers(store=Store(store_path), processes=runtime, files=FileWriter(), aws=AwsWriting())


def self_command() -> str:
    """How children call back into ampd (``ampd proxy``)."""
    env = os.environ.get("AMPD_SELF")
    if env:
        return env
    argv0 = Path(sys.argv[0])
    if argv0.name == "ampd" and argv0.exists():
        return str(argv0.absolute())
    return shutil.which("ampd") or "/usr/bin/ampd"


def _requested_runtime(source: SpecSource) -> str:
    try:
        return load_spec(source.text(), source.name).spec.runtime
    except (SpecError, OSError):  # an invalid file at start-up still gets a runtime
        return "auto"


def runtime_name(source: SpecSource, requested: str | None = None) -> str:
    """ "systemd" or "supervisor": what :func:`make_runtime` builds here, for the commands
    that only need to know (``ampd render`` renders whom the proxy signs for)."""
    wanted = os.environ.get("AMPD_RUNTIME") or requested or _requested_runtime(source)
    if wanted == "systemd" or (wanted == "auto" and running_under_systemd()):
        return "systemd"
    return "supervisor"


def make_runtime(
    source: SpecSource, on_exit: Callable[[str], None], requested: str | None = None
) -> Runtime:
    """``requested`` is the spec's ``runtime`` when the caller has already loaded it."""
    if runtime_name(source, requested) == "systemd":
        return SystemdRuntime(on_exit=on_exit)
    return Supervisor(on_exit=on_exit)


def make_aws(store: StoreView, book: RetryBook) -> AwsSide:
    return AwsSide(make_gateway, store, book)


def make_ingest(paths: Paths, runtime_name: str, fleet_size: int | None = None) -> IngestSide:
    """The ingest side: dry scrapes, prices, and Prometheus' own /metrics read only from
    a server running as the user Prometheus runs as (ampd's own, as the user that owns
    the state directory)."""
    uid = process_user("prometheus", runtime_name).uid
    try:  # ampd runs as the owner of its state directory
        own_uid: int | None = paths.state_dir.stat().st_uid
    except OSError:
        own_uid = None

    def metrics(url: str) -> Fetched:
        return owned_metrics(url, uid)

    def own_metrics(url: str) -> Fetched:
        assert own_uid is not None
        return owned_metrics(url, own_uid)

    view = StoreView(paths.store)
    own = own_metrics if own_uid is not None else None
    observer = Observer(paths.state_dir, view, metrics=metrics, own_metrics=own)
    return IngestSide(observer, fleet_size=fleet_size)


def reconciler(
    state: SpecSource | Path,
    paths: Paths,
    runtime: Runtime,
    *,
    writes: bool = True,
    aws: AwsSide | bool = False,
    instance_facts: InstanceFacts | None = None,
    self_command: str = "/usr/bin/ampd",
    manage_processes: bool = True,
    own_writes: OwnWrites | None = None,
    ingest: IngestSide | bool = True,
) -> Reconciler[Writers]:
    """The pass and its collaborators, built in one place and handed in: the spec's
    source, the local side, the AWS side (``aws=True``: the real one), the fact finder,
    one retry book, and -- only when the caller ``writes`` (``ampd run``, ``ampd
    apply``) -- the :class:`Writers`. Everything else reads through a StoreView.
    ``ingest``: the ingest side (True: built here; False: none)."""
    source = FileSource(state) if isinstance(state, Path) else state
    view = StoreView(paths.store)
    book = RetryBook()
    local = LocalSide(
        paths,
        runtime,
        view,
        book,
        state_path=source.name,
        self_command=self_command,
        manage_processes=manage_processes,
        own_writes=own_writes,
    )
    aws_side = make_aws(view, book) if aws is True else (aws or None)
    ingest_side = make_ingest(paths, runtime.name) if ingest is True else (ingest or None)
    return Reconciler(
        source,
        paths,
        local=local,
        aws=aws_side,
        ingest=ingest_side,
        writers=make_writers(paths.store, runtime) if writes else None,
        finder=FactFinder(view, instance_facts),
        book=book,
        runtime_name=runtime.name,
    )


__all__ = [
    "Writers",
    "api_call_counts",
    "imds",
    "make_aws",
    "make_ingest",
    "make_runtime",
    "make_writers",
    "reconciler",
    "runtime_name",
    "self_command",
]
