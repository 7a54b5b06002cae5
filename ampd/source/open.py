"""Open the state the command line names: a file, or a remote document (``ssm:NAME``,
``s3://BUCKET/KEY``). The source object is handed to whoever needs it (the pass, the
watcher, the commands); nothing looks it up by name later."""

from __future__ import annotations

from pathlib import Path

from ampd.engine.source import SpecSource
from ampd.gateways.files import FileWriter
from ampd.gateways.statesource import SourceFetcher, parse_ref
from ampd.source.files import Fetcher
from ampd.source.local import FileSource
from ampd.source.specfile import file_problems, source_name
from ampd.source.state import StateSource

__all__ = ["open_source", "source_name"]


def open_source(
    location: str | Path,
    cache_dir: Path | None = None,
    *,
    files: FileWriter | None = None,
    run_promtool: bool = True,
    fetcher: Fetcher | None = None,
    region: str | None = None,
) -> SpecSource:
    """The source for ``location``: a :class:`FileSource` for a path, a
    :class:`StateSource` for ``ssm:``/``s3://``.

    ``cache_dir`` None: no cache (validate). ``files``: only ``run`` and ``apply`` pass a
    file writer, and only then is the last good copy written; without one the cached
    copy is used when the source is unreachable and nothing is written. ``region``:
    ``--region`` (else AWS_REGION, AWS_DEFAULT_REGION, IMDS; never a guessed one)."""
    name = source_name(location)
    if name is None:
        return FileSource(Path(location), run_promtool=run_promtool)
    return open_remote(
        name, cache_dir, files=files, run_promtool=run_promtool, fetcher=fetcher, region=region
    )


def open_remote(
    name: str,
    cache_dir: Path | None = None,
    *,
    files: FileWriter | None = None,
    run_promtool: bool = True,
    fetcher: Fetcher | None = None,
    region: str | None = None,
) -> StateSource:
    return StateSource(
        parse_ref(name),
        cache_dir,
        fetcher if fetcher is not None else SourceFetcher(region),
        validate=lambda loaded: file_problems(loaded, run_promtool=run_promtool),
        files=files,
    )
