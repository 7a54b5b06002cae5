"""Read and fully check a state file: the pure checks plus those that touch the disk.

Referenced files must exist and be readable; rule files must pass ``promtool check rules``;
the alert manager file must be YAML with a ``route``; a Grafana credentials file must not
be readable by others.

A state may also be ``ssm:NAME`` or ``s3://BUCKET/KEY`` (:mod:`ampd.source.state`): the
command line opens it (``ampd.source.open.open_source``) and hands the source object to
whoever needs it; :func:`load_and_check` given a source answers with its last good version.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ampd.engine.source import SpecSource
from ampd.errors import PermanentError, Problem, SpecError
from ampd.gateways import promtool
from ampd.gateways.execcheck import untrusted
from ampd.gateways.files import file_kind, read_text
from ampd.spec.checks import executables
from ampd.spec.load import LoadedSpec, load_spec
from ampd.spec.named import NamedFile


def source_name(path: Path | str | SpecSource) -> str | None:
    """``ssm:NAME`` / ``s3://BUCKET/KEY`` / ``appconfig:APP/ENV/PROFILE`` when ``path`` names
    a remote state, else None.
    (``Path("s3://b/k")`` reads back as ``s3:/b/k``; both spellings are understood.)"""
    if not isinstance(path, str | Path):
        return path.name if path.remote else None
    text = str(path)
    if text.startswith(("ssm:", "appconfig:")):
        return text
    if text.startswith("s3:/"):
        return "s3://" + text[4:].lstrip("/")
    return None


def read_state_file(path: Path) -> str:
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
    """Every problem of the files the spec names (``StateSpec.named_files()``), and of the
    binaries it runs."""
    out: list[Problem] = executable_problems(loaded)
    for named in loaded.spec.named_files():
        problem = _named_file_problem(named, run_promtool=run_promtool)
        if problem is not None:
            out.append(loaded.problem(named.loc, problem))
    return out + inline_problems(loaded, run_promtool=run_promtool)


def inline_problems(loaded: LoadedSpec, *, run_promtool: bool = True) -> list[Problem]:
    """The rules and the alert manager configuration written in the state itself
    (``content``), checked as their files would be."""
    ws = loaded.spec.workspace
    if ws is None:
        return []
    out: list[Problem] = []
    for i, group in enumerate(ws.rule_groups):
        if group.content is None or not run_promtool:
            continue
        problem = _rules_problem(partial(promtool.check_rules_text, group.content))
        if problem is not None:
            out.append(loaded.problem(("workspace", "rule_groups", i, "content"), problem))
    am = ws.alertmanager
    if am is not None and am.content is not None:
        problem = alertmanager_problem(am.content)
        if problem:
            out.append(loaded.problem(("workspace", "alertmanager", "content"), problem))
    return out


def _rules_problem(check: Callable[[], promtool.CheckResult]) -> str | None:
    """What ``promtool check rules`` (of a file or of the state's own content) found."""
    try:
        res = check()
    except PermanentError as e:
        return str(e)
    detail = " ".join(res.output.split())
    return None if res.ok else f"promtool check rules failed: {detail}"


def _named_file_problem(named: NamedFile, *, run_promtool: bool) -> str | None:
    path = named.path
    if named.kind == "dashboard":  # a file or a directory of them
        try:
            missing = file_kind(Path(path)) in ("missing", "invalid name")
        except OSError as e:
            return f"{path}: {e.strerror or e}"
        return f"{path}: no such file or directory" if missing else None
    bad = _readable(path)
    if bad:
        return bad
    if named.kind == "rules":
        if not run_promtool:
            return None
        return _rules_problem(partial(promtool.check_rules, Path(path)))
    if named.kind == "alertmanager":
        problem = alertmanager_problem(read_text(Path(path)))
        return f"{path}: {problem}" if problem else None
    if Path(path).stat().st_mode & (stat.S_IROTH | stat.S_IWOTH):  # credentials
        return f"{path} is readable by others; chmod 0640 it"
    return None


def load_and_check(path: Path | SpecSource, *, run_promtool: bool = True) -> LoadedSpec:
    """The validated spec, or SpecError listing every problem of the file.

    Given a source (an ssm:/s3:// state, opened by ``ampd.source.open.open_source``):
    its current good version (polling first when a poll is due)."""
    if not isinstance(path, Path):
        return path.load()
    loaded = load_spec(read_state_file(path), str(path))
    problems = file_problems(loaded, run_promtool=run_promtool)
    if problems:
        raise SpecError(problems)
    return loaded
