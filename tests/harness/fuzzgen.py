"""State files for fuzzing: documents drawn from the JSON Schema, then broken.

- ``document(rng)``: a dict drawn from ``config/state.schema.json`` (what ``ampd schema``
  prints): ``$ref``, ``anyOf``, ``enum``, ``const``, patterns, optional properties. Most
  are valid or nearly so, which is what lets the mutations reach deep into the loader
  instead of stopping at the first line.
- ``state_file(rng, kind)``: the bytes of a state file — a schema document dumped as
  YAML, then one mutation of ``KINDS``: a value of the wrong type, unicode, huge numbers
  and strings, deep nesting, anchors and alias bombs, YAML tags, unknown keys, byte-level
  edits of the text (truncation, duplicated lines, broken indentation), binary, empty,
  other encodings, CRLF with a BOM.
- ``state_files()``: the Hypothesis strategy over (kind, seed); a plain ``random.Random``
  does the drawing, which keeps one case well under a millisecond to generate.
- ``FS_CASES`` / ``make_fs_case``: what can stand where the state file should be.

Limits keep one case in milliseconds (a 5,000-deep document takes ampd seconds to refuse):
strings up to 8 KiB (200 characters in fields that name files: ampd looks them up), nesting
up to 30, alias bombs up to ~8,000 values, integers up to ``MAX_INT_DIGITS`` digits. The
1,500-deep document and the full billion laughs have their own tests.
"""

from __future__ import annotations

import json
import os
import random
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st

# AMPD_FUZZ_SEED=n draws other cases; 0 (the default) is the same cases on every run.
SEED = int(os.environ.get("AMPD_FUZZ_SEED", "0"))


def run_timed(test: Callable[[], None]) -> tuple[float, float]:
    """Run a Hypothesis test (seeded by SEED when it is set): wall and CPU seconds."""
    if SEED:
        test = seed(SEED)(test)
    wall, cpu = time.monotonic(), time.process_time()
    test()
    return time.monotonic() - wall, time.process_time() - cpu


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for the fuzz tests: ``examples`` cases, reproducible by SEED."""
    return settings(
        max_examples=examples,
        derandomize=SEED == 0,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


REPO = Path(__file__).resolve().parents[2]
SCHEMA: dict[str, Any] = json.loads((REPO / "config" / "state.schema.json").read_text())

# CPython refuses to turn longer digit strings into int (sys.get_int_max_str_digits()).
MAX_INT_DIGITS = 4000
MAX_DEPTH = 30
MAX_STRING = 8 * 1024

Doc = dict[str, Any]

# -- documents from the schema ---------------------------------------------------------

_LOWER = string.ascii_lowercase + string.digits
_WORD = string.ascii_letters + string.digits + "_"
# One generator per pattern the schema uses; an unknown pattern falls back to its
# examples, its default or any text (a schema change then shows up as invalid cases).
_PATTERNS: dict[str, Callable[[random.Random], str]] = {
    "^/": lambda r: "/" + "/".join(_word(r, 1, 8) for _ in range(r.randint(0, 3))),
    "^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$": lambda r: _word(r, 1, 12, _WORD + "-."),
    "^[\\w+=,.@-]{1,64}$": lambda r: _word(r, 1, 16, _WORD + "+=,.@-"),
    "^[a-z0-9][a-z0-9-]{0,31}$": lambda r: _word(r, 1, 1, _LOWER) + _word(r, 0, 8, _LOWER + "-"),
    "^[a-zA-Z_][a-zA-Z0-9_]*$": lambda r: r.choice(string.ascii_letters + "_") + _word(r, 0, 8),
    "^\\d+(ms|s|m|h|d)$": lambda r: f"{r.randint(0, 999)}{r.choice(['ms', 's', 'm', 'h', 'd'])}",
    "^ws-[0-9a-zA-Z-]{1,64}$": lambda r: "ws-" + _word(r, 1, 12, _LOWER + "-"),
}
_EXOTIC = "éß中🙂\u200b\u202e\ufeff\x00\x1b\\\"':#&*!|>%@`{}[],?-"
# Values carry no line breaks (\n \r \x0b \x0c \x85 \u2028): ampd echoes some values
# verbatim in its messages, so a break would split a problem over two lines.
_PRINTABLE = string.printable.translate(str.maketrans("", "", "\n\r\x0b\x0c"))


def _word(rng: random.Random, lo: int, hi: int, alphabet: str = _WORD) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def _text(rng: random.Random, lo: int = 0, hi: int = 24) -> str:
    alphabet = _PRINTABLE if rng.random() < 0.8 else _EXOTIC + string.ascii_letters
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: dict[str, Any] = SCHEMA["$defs"][str(ref).rsplit("/", 1)[-1]]
    return target


def _string(rng: random.Random, node: dict[str, Any]) -> str:
    known = [v for v in (*node.get("examples", []), node.get("default")) if isinstance(v, str)]
    gen = _PATTERNS.get(node.get("pattern", ""))
    roll = rng.random()
    if gen is not None and roll < 0.7:
        return gen(rng)
    if known and roll < 0.9:
        return rng.choice(known)
    lo = int(node.get("minLength", 0))
    return _text(rng, lo, max(lo, int(node.get("maxLength", 24))))


def _object(rng: random.Random, node: dict[str, Any], depth: int) -> dict[str, Any]:
    props: dict[str, Any] = node.get("properties", {})
    if props:
        required = set(node.get("required", []))
        keep = 0.35 if depth < 2 else 0.25  # small documents: ~2 ms each to load
        return {
            k: from_schema(rng, v, depth + 1)
            for k, v in props.items()
            if k in required or rng.random() < keep
        }
    values = node.get("additionalProperties")
    patterns = node.get("patternProperties") or {}
    if patterns:
        pattern, values = next(iter(patterns.items()))
        gen = _PATTERNS.get(pattern)
    else:
        gen = None
    out: dict[str, Any] = {}
    for _ in range(rng.randint(0, 3)):
        key = gen(rng) if gen else _word(rng, 1, 10, _WORD + "-./")
        out[key] = from_schema(rng, values, depth + 1) if isinstance(values, dict) else "v"
    return out


def from_schema(rng: random.Random, node: dict[str, Any], depth: int = 0) -> Any:
    """A value that a (sub)schema describes, mostly."""
    node = _resolve(node)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return rng.choice(node["enum"])
    if "anyOf" in node:
        alts = node["anyOf"]
        # a present section is more interesting than null: weigh the non-null options up
        real = [a for a in alts if a.get("type") != "null"] or alts
        return from_schema(rng, rng.choice(real if rng.random() < 0.85 else alts), depth)
    kind = node.get("type")
    if kind == "string":
        return _string(rng, node)
    if kind == "integer":
        lo = int(node.get("minimum", node.get("exclusiveMinimum", -10)))
        return rng.randint(lo, int(node.get("maximum", max(lo, 100_000))))
    if kind == "number":
        return rng.uniform(0, 1e6)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "array":
        lo = int(node.get("minItems", 0))
        items = node.get("items", {"type": "string"})
        return [from_schema(rng, items, depth + 1) for _ in range(rng.randint(lo, max(lo, 2)))]
    if kind == "object" or "properties" in node:
        return _object(rng, node, depth)
    return None


def document(rng: random.Random) -> Doc:
    doc: Doc = from_schema(rng, SCHEMA)
    return doc


def dump(doc: Any) -> str:
    text: str = yaml.dump(
        doc, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=120
    )
    return text


# -- mutations ----------------------------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], tuple(rest), value)}
    copy = list(node)
    copy[head] = _replace(copy[head], tuple(rest), value)
    return copy


def _huge_number(rng: random.Random) -> Any:
    digits = rng.randint(20, MAX_INT_DIGITS)
    return rng.choice(
        [
            10**digits - 1,
            -(10**digits),
            2**63,
            2**64 + 1,
            -(2**63) - 1,
            1e308,
            -1e308,
            5e-324,
            float("inf"),
            float("-inf"),
            float("nan"),
        ]
    )


def _scalar(rng: random.Random) -> Any:
    numbers = [0, -1, rng.randint(-(2**40), 2**40), rng.uniform(-1e9, 1e9)]
    tricky = ["", "1", "yes", "no", "null", "~", "0x1f", "1_000", "0o17", "1e3", "15s"]
    return rng.choice([None, True, False, _text(rng), *numbers, *tricky])


def _wrong(rng: random.Random) -> Any:
    pick = rng.randint(0, 4)
    if pick == 0:
        return [_scalar(rng) for _ in range(rng.randint(0, 3))]
    if pick == 1:
        return {_word(rng, 0, 6): _scalar(rng) for _ in range(rng.randint(0, 3))}
    if pick == 2:
        return _huge_number(rng)
    return _scalar(rng)


def _deep(depth: int, as_list: bool) -> Any:
    node: Any = "leaf"
    for _ in range(depth):
        node = [node] if as_list else {"k": node}
    return node


def _bomb(levels: int, width: int, at: str) -> str:
    lines = ["version: 1", "a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"{at}: *a{levels}")
    return "\n".join(lines) + "\n"


_TAGGED = [
    "version: !!python/object/apply:os.system ['true']\n",
    "version: !!python/name:os.system\n",
    "version: !!binary aGVsbG8=\n",
    "version: 1\nstack: !!timestamp 2001-12-14t21:59:43.10-05:00\n",
    "version: 1\nprometheus: !!set {a, b}\n",
    "version: !custom 1\n",
    "%YAML 1.1\n---\nversion: 1\n",
    "%TAG ! tag:example.com,2000:\n---\nversion: !foo 1\n",
    "version: 1\n---\nversion: 1\n",
    "version: 1\n<<: {stack: x}\n",
    "version: 1\nprometheus:\n  <<: *nope\n",
    "version: &v 1\nstack: *v\n",
    "? [a, b]\n: 1\nversion: 1\n",
    "version: 1\nprometheus: {? {a: 1} : 2}\n",
    "version: 1\nprometheus: &p {listen: *p}\n",
]
_EMPTY = [b"", b" ", b"\n\n", b"# only a comment\n", b"---\n", b"...\n", b"~\n", b"null\n"]
_EMPTY += [b"\t\n", b"\xef\xbb\xbf", b"[]\n", b"{}\n", b"1\n", b"- version: 1\n", b'"version: 1"\n']
_EDIT_CHARS = list(":-[]{}&*!|>'\"%@`#,?\t\r\n\x00\ufeff é🙂 ")


def _text_edit(rng: random.Random, text: str) -> str:
    pos = rng.randint(0, len(text))
    char = rng.choice(_EDIT_CHARS)
    lines = text.splitlines(keepends=True) or [""]
    i = rng.randrange(len(lines))
    match rng.randint(0, 6):
        case 0:  # delete a character
            return text[:pos] + text[pos + 1 :]
        case 1:  # insert one
            return text[:pos] + char + text[pos:]
        case 2:  # truncate (a file cut short)
            return text[:pos]
        case 3:  # duplicate a line (duplicate keys, repeated items)
            return "".join([*lines[: i + 1], lines[i], *lines[i + 1 :]])
        case 4:  # a stray character before a line's indentation
            lines[i] = char + lines[i]
            return "".join(lines)
        case 5:  # a line loses its indentation
            lines[i] = lines[i].lstrip()
            return "".join(lines)
        case _:  # tabs for indentation
            return text.replace("  ", "\t", rng.randint(1, 3))


_FILE_FIELDS = {"file", "credentials_file", "dashboards"}

KINDS = (
    "valid",
    "wrong_type",
    "unicode",
    "huge_number",
    "huge_string",
    "deep",
    "deep_text",
    "alias_bomb",
    "alias",
    "tagged",
    "unknown_key",
    "text_edit",
    "binary",
    "empty",
    "encoding",
    "crlf_bom",
)


def state_file(rng: random.Random, kind: str) -> bytes:
    """The bytes of one state file of mutation ``kind`` (see ``KINDS``)."""
    doc = document(rng)
    where = rng.choice(_paths(doc)[1:] or [("version",)])
    match kind:
        case "valid":
            return dump(doc).encode()
        case "wrong_type":
            return dump(_replace(doc, where, _wrong(rng))).encode()
        case "unicode":
            return dump(_replace(doc, where, _text(rng, 1, 40))).encode()
        case "huge_number":
            return dump(_replace(doc, where, _huge_number(rng))).encode()
        case "huge_string":  # a placeholder, replaced after dumping (fast)
            text = dump(_replace(doc, where, "HUGE-STRING-HERE"))
            size = 200 if _FILE_FIELDS & {str(p) for p in where} else MAX_STRING
            return text.replace("HUGE-STRING-HERE", "x" * rng.randint(size // 8, size)).encode()
        case "deep":
            deep = _deep(rng.randint(1, MAX_DEPTH), rng.random() < 0.5)
            return dump(_replace(doc, where, deep)).encode()
        case "deep_text":
            n = rng.randint(1, MAX_DEPTH)
            text = "[" * n + "1" + "]" * n if rng.random() < 0.5 else "{a: " * n + "1" + "}" * n
            return f"version: 1\nprometheus:\n  external_labels: {text}\n".encode()
        case "alias_bomb":
            at = rng.choice(["stack", "prometheus", "workspace", "junk"])
            return _bomb(rng.randint(1, 4), rng.randint(2, 6), at).encode()
        case "alias":
            return dump(_replace(doc, where, doc)).encode()  # written as &id001 / *id001
        case "tagged":
            return rng.choice(_TAGGED).encode()
        case "unknown_key":
            key = rng.choice(["versoin", "prometheus.listen", "Stack", "x" * 300, "é", "1"])
            return dump({**doc, key: _scalar(rng)}).encode()
        case "text_edit":
            text = dump(doc)
            for _ in range(rng.randint(1, 4)):
                text = _text_edit(rng, text)
            return text.encode()
        case "binary":
            prefix = rng.choice([b"", b"version: 1\n", b"\x00", b"\xff\xfe"])
            return prefix + rng.randbytes(rng.randint(0, 512))
        case "empty":
            return rng.choice(_EMPTY)
        case "encoding":
            enc = rng.choice(["utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252"])
            return dump(doc).encode(enc, "replace")
        case "crlf_bom":
            return b"\xef\xbb\xbf" + dump(doc).replace("\n", "\r\n").encode()
        case _:
            raise ValueError(kind)


def state_files() -> st.SearchStrategy[tuple[str, bytes]]:
    """(kind, bytes); Hypothesis picks the kind and the seed of the drawing."""
    return st.tuples(st.sampled_from(KINDS), st.integers(0, 2**63 - 1)).map(
        lambda ks: (ks[0], state_file(random.Random(ks[1]), ks[0]))
    )


# -- the filesystem ----------------------------------------------------------------------

FS_CASES = ("missing", "directory", "dangling_symlink", "fifo", "symlink_loop")


def make_fs_case(kind: str, where: Path) -> Path:
    """Put ``kind`` at ``where`` (a path that does not exist yet) and return it."""
    match kind:
        case "missing":
            pass
        case "directory":
            where.mkdir()
            (where / "state.yml").write_text("version: 1\n")
        case "dangling_symlink":
            where.symlink_to(where.with_name(where.name + ".nothing-here"))
        case "fifo":
            os.mkfifo(where)
        case "symlink_loop":
            other = where.with_name(where.name + ".loop")
            other.symlink_to(where)
            where.symlink_to(other)
        case _:
            raise ValueError(kind)
    return where
