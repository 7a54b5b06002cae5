"""Read and fully check a state file: the pure checks plus those that touch the disk.

Referenced files must exist and be readable; rule files must pass ``promtool check rules``;
the alert manager file must be YAML with a ``route``; a Grafana credentials file must not
be readable by others.
"""

from __future__ import annotations

import stat
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ampd.errors import PermanentError, Problem, SpecError
from ampd.gateways import promtool
from ampd.gateways.files import read_text
from ampd.spec.load import LoadedSpec, load_spec


def read_state_file(path: Path) -> str:
    try:
        return read_text(path)
    except FileNotFoundError:
        raise SpecError([Problem(str(path), 1, 1, "", "no such file")]) from None
    except PermissionError:
        raise SpecError([Problem(str(path), 1, 1, "", "permission denied")]) from None
    except UnicodeDecodeError as e:
        raise SpecError([Problem(str(path), 1, 1, "", f"not UTF-8 text: {e.reason}")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(str(path), 1, 1, "", "is a directory")]) from None


def _readable(path: str) -> str | None:
    p = Path(path)
    if not p.exists():
        return f"{path}: no such file"
    if not p.is_file():
        return f"{path}: not a regular file"
    try:
        with p.open("rb"):
            pass
    except PermissionError:
        return f"{path}: permission denied"
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


def file_problems(loaded: LoadedSpec, *, run_promtool: bool = True) -> list[Problem]:
    spec = loaded.spec
    out: list[Problem] = []
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
            if not Path(d).exists():
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


def load_and_check(path: Path, *, run_promtool: bool = True) -> LoadedSpec:
    """The validated spec, or SpecError listing every problem of the file."""
    loaded = load_spec(read_state_file(path), str(path))
    problems = file_problems(loaded, run_promtool=run_promtool)
    if problems:
        raise SpecError(problems)
    return loaded
