"""Read and fully check a state file: the pure checks plus those that touch the disk.

Referenced files must exist and be readable; rule files must pass ``promtool check rules``;
the alert manager file must be YAML with a ``route``; a Grafana credentials file must not
be readable by others.

A state "path" may also be ``ssm:NAME`` or ``s3://BUCKET/KEY`` (:mod:`ampd.source.state`):
:func:`open_source` registers one (with its cache directory) and :func:`load_and_check` /
:func:`read_state_file` given that name answer with its last good version.
"""

from __future__ import annotations

import stat
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ampd.errors import PermanentError, Problem, SpecError
from ampd.gateways import promtool
from ampd.gateways.execcheck import untrusted
from ampd.gateways.files import file_kind, read_text
from ampd.gateways.statesource import SourceFetcher, parse_ref
from ampd.source.files import Fetcher
from ampd.source.state import StateSource
from ampd.spec.checks import executables
from ampd.spec.load import LoadedSpec, load_spec

_SOURCES: dict[str, StateSource] = {}


def source_name(path: Path | str) -> str | None:
    """``ssm:NAME`` / ``s3://BUCKET/KEY`` when ``path`` names a remote state, else None.
    (``Path("s3://b/k")`` reads back as ``s3:/b/k``; both spellings are understood.)"""
    text = str(path)
    if text.startswith("ssm:"):
        return text
    if text.startswith("s3:/"):
        return "s3://" + text[4:].lstrip("/")
    return None


def open_source(
    location: str,
    cache_dir: Path | None,
    *,
    run_promtool: bool = True,
    fetcher: Fetcher | None = None,
    write_cache: bool = True,
    region: str | None = None,
) -> StateSource:
    """The StateSource for ``location`` (registered: later calls by name find it).

    ``cache_dir`` None: no cache (validate); ``write_cache=False``: the cached copy is used
    when the source is unreachable but nothing is written (plan, render). ``region``:
    ``--region`` (else AWS_REGION, AWS_DEFAULT_REGION, IMDS; never a guessed one)."""
    name = source_name(location) or location
    src = StateSource(
        parse_ref(name),
        cache_dir,
        fetcher if fetcher is not None else SourceFetcher(region),
        validate=lambda loaded: file_problems(loaded, run_promtool=run_promtool),
        write_cache=write_cache,
    )
    _SOURCES[name] = src
    return src


def state_source_for(path: Path | str | StateSource) -> StateSource | None:
    """The registered source behind a state path (None for a local file)."""
    if isinstance(path, StateSource):
        return path
    name = source_name(path)
    if name is None:
        return None
    return _SOURCES.get(name) or open_source(name, None)


def forget_sources() -> None:
    """Drop every registered source (tests)."""
    _SOURCES.clear()


def read_state_file(path: Path | StateSource) -> str:
    src = state_source_for(path)
    if src is not None:
        return src.text()
    assert isinstance(path, Path)
    try:
        kind = file_kind(path)  # never open a FIFO or a device: a read could block forever
        if kind not in ("file", "missing", "directory"):
            raise SpecError([Problem(str(path), 1, 1, "", f"not a regular file ({kind})")])
        return read_text(path)
    except FileNotFoundError:
        raise SpecError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except PermissionError:
        raise SpecError([Problem(str(path), 1, 1, "", "permission denied")]) from None
    except UnicodeDecodeError as e:
        raise SpecError([Problem(str(path), 1, 1, "", f"not UTF-8 text: {e.reason}")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(str(path), 1, 1, "", "is a directory")]) from None
    except OSError as e:  # a symlink loop, a name too long, an I/O error
        raise SpecError(
            [Problem(str(path), 1, 1, "", f"cannot be read: {e.strerror or e}")]
        ) from None


def _readable(path: str) -> str | None:
    p = Path(path)
    try:
        kind = file_kind(p)
        if kind == "missing":
            return f"{path}: no such file"
        if kind != "file":
            return f"{path}: not a regular file ({kind})"
        with p.open("rb"):
            pass
    except PermissionError:
        return f"{path}: permission denied"
    except OSError as e:  # a symlink loop, a name too long
        return f"{path}: cannot be read: {e.strerror or e}"
    return None


def alertmanager_problem(text: str) -> str | None:
    try:
        doc = YAML(typ="safe").load(text)
    except YAMLError as e:
        return f"not valid YAML: {str(e).splitlines()[0]}"
    if isinstance(doc, dict) and isinstance(doc.get("alertmanager_config"), str):
        try:
            doc = YAML(typ="safe").load(doc["alertmanager_config"])
        except YAMLError as e:
            return f"alertmanager_config is not valid YAML: {str(e).splitlines()[0]}"
    if not isinstance(doc, dict) or "route" not in doc:
        return "an alert manager configuration needs a top-level route"
    return None


def executable_problems(loaded: LoadedSpec) -> list[Problem]:
    """A path ampd runs must be owned by root and writable by nobody else, all the way
    down (ampd.gateways.execcheck)."""
    out: list[Problem] = []
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    for loc, path, what in executables(loaded.spec):
        why = untrusted(path)
        if why is not None and (loc, why) not in seen:  # promtool beside: said once
            seen.add((loc, why))
            out.append(
                loaded.problem(
                    loc,
                    f"{path} is not {what} by ampd: {why}; it and every directory above "
                    "it must be owned by root and writable by no one else",
                )
            )
    return out


def file_problems(loaded: LoadedSpec, *, run_promtool: bool = True) -> list[Problem]:
    spec = loaded.spec
    out: list[Problem] = executable_problems(loaded)
    ws = spec.workspace
    if ws is not None:
        for i, group in enumerate(ws.rule_groups):
            loc: tuple[str | int, ...] = ("workspace", "rule_groups", i, "file")
            bad = _readable(group.file)
            if bad:
                out.append(loaded.problem(loc, bad))
                continue
            if run_promtool:
                try:
                    res = promtool.check_rules(Path(group.file))
                except PermanentError as e:
                    out.append(loaded.problem(loc, str(e)))
                    continue
                if not res.ok:
                    detail = " ".join(res.output.split())
                    out.append(loaded.problem(loc, f"promtool check rules failed: {detail}"))
        if ws.alertmanager is not None:
            loc = ("workspace", "alertmanager", "file")
            bad = _readable(ws.alertmanager.file)
            if bad:
                out.append(loaded.problem(loc, bad))
            else:
                problem = alertmanager_problem(read_text(Path(ws.alertmanager.file)))
                if problem:
                    out.append(loaded.problem(loc, f"{ws.alertmanager.file}: {problem}"))
    g = spec.grafana
    if g is not None:
        for i, d in enumerate(g.dashboards):
            try:
                missing = file_kind(Path(d)) in ("missing", "invalid name")
            except OSError as e:
                out.append(loaded.problem(("grafana", "dashboards", i), f"{d}: {e.strerror or e}"))
                continue
            if missing:
                out.append(
                    loaded.problem(("grafana", "dashboards", i), f"{d}: no such file or directory")
                )
        cred = g.datasource.credentials_file
        if cred is not None:
            loc = ("grafana", "datasource", "credentials_file")
            bad = _readable(cred)
            if bad:
                out.append(loaded.problem(loc, bad))
            elif Path(cred).stat().st_mode & (stat.S_IROTH | stat.S_IWOTH):
                out.append(loaded.problem(loc, f"{cred} is readable by others; chmod 0640 it"))
    return out


def load_and_check(path: Path | StateSource, *, run_promtool: bool = True) -> LoadedSpec:
    """The validated spec, or SpecError listing every problem of the file.

    For a remote source: its last good version (polling first when a poll is due)."""
    src = state_source_for(path)
    if src is not None:
        return src.current()
    assert isinstance(path, Path)
    loaded = load_spec(read_state_file(path), str(path))
    problems = file_problems(loaded, run_promtool=run_promtool)
    if problems:
        raise SpecError(problems)
    return loaded
