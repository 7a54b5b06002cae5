"""Parse state-file text into a StateSpec, reporting every problem with FILE:LINE:COL.

Pure: takes the text and a display name; reading the file is the caller's business.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from ampd.errors import Problem, SpecError
from ampd.spec.checks import semantic_problems
from ampd.spec.models import StateSpec

Loc = tuple[str | int, ...]


_MISSING = object()


def _step(node: Any, part: str | int) -> Any:
    """The child of a YAML node, or _MISSING."""
    if isinstance(node, CommentedMap) and part in node:
        return node[part]
    if isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
        return node[part]
    return _MISSING


@dataclass(frozen=True)
class Positions:
    """Maps a field path to the (line, column) where the file says it, both 1-based."""

    root: Any

    def find(self, loc: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        node = self.root
        best = (1, 1)
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            try:
                if isinstance(node, CommentedMap) and part in node:
                    pos = node.lc.key(part) if last and key else node.lc.value(part)
                elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                    pos = node.lc.item(part)
                else:
                    break
                best = (pos[0] + 1, pos[1] + 1)
            except (TypeError, IndexError, KeyError):  # a node without positions (!!omap)
                break
            node = node[part]
        return best

    def contains(self, loc: Sequence[str | int]) -> bool:
        """Whether the file itself says this field (rather than leaving it to a default)."""
        node = self.root
        for part in loc:
            node = _step(node, part)
            if node is _MISSING:
                return False
        return True

    def walk_keys(self) -> Iterator[tuple[Loc, Any]]:
        yield from _walk((), self.root)


def _walk(prefix: Loc, node: Any) -> Iterator[tuple[Loc, Any]]:
    if isinstance(node, CommentedMap):
        for k, v in node.items():
            yield (*prefix, k), v
            yield from _walk((*prefix, k), v)
    elif isinstance(node, CommentedSeq):
        for i, v in enumerate(node):
            yield from _walk((*prefix, i), v)


@dataclass(frozen=True)
class LoadedSpec:
    spec: StateSpec
    file: str
    positions: Positions
    sha256: str

    def problem(self, loc: Sequence[str | int], message: str, *, key: bool = False) -> Problem:
        line, col = self.positions.find(loc, key=key)
        return Problem(self.file, line, col, dotted(loc), message)


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


MAX_NODES = 100_000  # a state file is small; aliases must not expand it without bound


class _TooLarge(Exception):
    pass


def _plain(node: Any, budget: list[int] | None = None) -> Any:
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v, budget) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, budget) for v in node]
    return node


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that owns the mapping at ``loc`` (for did-you-mean hints)."""
    model: Any = StateSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _union_members(annotation: Any) -> int:
    args = [a for a in (getattr(annotation, "__args__", ()) or ()) if a is not type(None)]
    origin = getattr(annotation, "__origin__", None)
    if origin in (list, dict) or (origin is None and not args):
        return 0
    return (
        len(args)
        if str(origin) in ("typing.Union", "<class 'types.UnionType'>")
        or (type(annotation).__name__ == "UnionType")
        else 0
    )


def _clean_loc(loc: Loc) -> Loc:
    """Drop the union-member tags pydantic inserts into locs ("bool", "literal['auto']")."""
    out: list[str | int] = []
    model: Any = StateSpec
    skip_tag = False
    item_union = False  # a list whose items are a union: a tag follows the index
    for part in loc:
        if part == "[key]":  # pydantic's marker for a dict key; the key itself is the place
            continue
        if skip_tag:
            skip_tag = False
            if isinstance(part, str):
                continue
        out.append(part)
        if isinstance(part, int):
            skip_tag, item_union = item_union, False
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(part)
            if field is None:
                model = None
                continue
            skip_tag = _union_members(field.annotation) > 1
            item_args: tuple[Any, ...] = getattr(field.annotation, "__args__", ()) or ()
            item_union = (
                getattr(field.annotation, "__origin__", None) is list
                and len(item_args) == 1
                and _union_members(item_args[0]) > 1
            )
            model = _inner_model(field.annotation)
        else:
            model = None
    return tuple(out)


def _message(err: Any, loc: Loc) -> tuple[str, bool]:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        parent = _model_at(loc[:-1])
        hint = ""
        if parent is not None:
            close = difflib.get_close_matches(name, list(parent.model_fields), n=1, cutoff=0.6)
            if close:
                hint = f"; did you mean {close[0]!r}?"
            else:
                hint = f"; known keys: {', '.join(parent.model_fields)}"
        return f"unknown key {name!r}{hint}", True
    if kind == "missing":
        return "required but missing", True
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "string_pattern_mismatch" and loc and isinstance(loc[-1], str):
        what = "key" if err["loc"][-1] == "[key]" else loc[-1]
        msg = f"{err.get('input')!r} is not a valid {what}: {msg[:1].lower()}{msg[1:]}"
    return msg, False


def parse_yaml(text: str, file: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except DuplicateKeyError as e:
        mark = e.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([Problem(file, line, col, "", f"duplicate key: {e.problem}")]) from None
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = e.problem or e.context or "invalid YAML"
        ctx_mark = e.context_mark
        if e.context and ctx_mark is not None and mark is not ctx_mark:
            what += f" ({e.context} at line {ctx_mark.line + 1}, column {ctx_mark.column + 1})"
        raise SpecError([Problem(file, line, col, "", f"YAML syntax: {what}")]) from None
    except ReaderError as e:  # a character YAML does not allow; it knows only the offset
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        what = f"unacceptable character #x{e.character:04x}: {e.reason}"
        raise SpecError([Problem(file, line, col, "", f"YAML syntax: {what}")]) from None
    except YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "invalid YAML"
        raise SpecError([Problem(file, 1, 1, "", f"YAML syntax: {first}")]) from None
    except RecursionError:
        raise SpecError([Problem(file, 1, 1, "", "YAML syntax: nested too deeply")]) from None
    except (ValueError, TypeError, OverflowError) as e:  # e.g. an integer of 5,000 digits
        raise SpecError([Problem(file, 1, 1, "", f"YAML value not accepted: {e}")]) from None


def _surrogates(node: Any, loc: Loc = ()) -> Iterator[tuple[Loc, bool, str]]:
    """(place, at a key, the code point) of every lone UTF-16 surrogate: YAML's ``\\u``
    escapes take code points, so ``"\\ud83d\\ude00"`` is two halves, not an emoji, and
    no UTF-8 file (prometheus.yml, Grafana's provisioning) can carry them."""
    if isinstance(node, str):
        bad = next((c for c in node if "\ud800" <= c <= "\udfff"), None)
        if bad is not None:
            yield loc, False, bad
    elif isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str) and any("\ud800" <= c <= "\udfff" for c in k):
                bad = next(c for c in k if "\ud800" <= c <= "\udfff")
                yield (*loc, k), True, bad
            yield from _surrogates(v, (*loc, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _surrogates(v, (*loc, i))


def load_spec(text: str, file: str) -> LoadedSpec:
    """Validate ``text``; raise SpecError with every problem found, in file order."""
    doc = parse_yaml(text, file)
    positions = Positions(doc)
    if doc is None:
        raise SpecError(
            [Problem(file, 1, 1, "", "the file is empty; it needs at least version: 1")]
        )
    if not isinstance(doc, CommentedMap):
        raise SpecError([Problem(file, 1, 1, "", "the top level must be a mapping (key: value)")])
    try:
        plain = _plain(doc)
    except _TooLarge:
        msg = f"more than {MAX_NODES} values once aliases are expanded; is this a state file?"
        raise SpecError([Problem(file, 1, 1, "", msg)]) from None
    halves = [
        Problem(
            file,
            *positions.find(loc, key=at_key),
            dotted(loc),
            f"contains U+{ord(c):04X}, half of a UTF-16 surrogate pair; write the "
            "character itself (the file is UTF-8), e.g. \U0001f642 rather than \\ud83d\\ude42",
        )
        for loc, at_key, c in _surrogates(plain)
    ]
    if halves:
        raise SpecError(halves)
    try:
        spec = StateSpec.model_validate(plain)
    except ValidationError as exc:
        problems: list[Problem] = []
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]))
            msg, at_key = _message(err, loc)
            line, col = positions.find(loc, key=at_key)
            problems.append(Problem(file, line, col, dotted(loc), msg))
        raise SpecError(_dedupe(problems)) from None
    spec = resolve_relative(spec, str(PurePosixPath(file).parent))
    loaded = LoadedSpec(spec, file, positions, hashlib.sha256(text.encode()).hexdigest())
    semantic = [
        loaded.problem(
            loc,
            msg
            if positions.contains(loc)
            else f"{msg} (this is the default value; set it in the file to change it)",
        )
        for loc, msg in semantic_problems(spec)
    ]
    if semantic:
        raise SpecError(semantic)
    return loaded


def _abs(path: str, base: str) -> str:
    return path if path.startswith("/") else str(PurePosixPath(base) / path)


def resolve_relative(spec: StateSpec, base: str) -> StateSpec:
    """Make referenced file paths absolute, relative to the state file's directory."""
    ws = spec.workspace
    if ws is not None:
        groups = [
            g.model_copy(update={"file": _abs(g.file, base)}) if g.file is not None else g
            for g in ws.rule_groups
        ]
        am = ws.alertmanager
        if am is not None and am.file is not None:
            am = am.model_copy(update={"file": _abs(am.file, base)})
        ws = ws.model_copy(update={"rule_groups": groups, "alertmanager": am})
    g = spec.grafana
    if g is not None:
        ds = g.datasource
        if ds.credentials_file is not None:
            ds = ds.model_copy(update={"credentials_file": _abs(ds.credentials_file, base)})
        g = g.model_copy(
            update={"dashboards": [_abs(d, base) for d in g.dashboards], "datasource": ds}
        )
    return spec.model_copy(update={"workspace": ws, "grafana": g})


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One line per place: alternatives of a union are joined with 'or'."""
    merged: dict[tuple[int, int, str], list[str]] = {}
    for p in problems:
        msgs = merged.setdefault((p.line, p.column, p.path), [])
        if p.message not in msgs:
            msgs.append(p.message)
    file = problems[0].file if problems else ""
    return [
        Problem(file, line, col, path, " or ".join(msgs))
        for (line, col, path), msgs in merged.items()
    ]
