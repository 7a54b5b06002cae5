"""The boto3/botocore floor in pyproject.toml is the first botocore whose models have every
operation and every parameter ampd's AWS gateway sends.

What ampd sends is read from the gateway's source (an AST scan of every
``self._amp/_iam/_sts.<method>(...)`` call, of the ``**kwargs`` dicts built for them, and of
every ``get_paginator("<method>").paginate(...)``), so a new call or parameter fails here
until the floor is raised. The models are read from the floor's own wheel, and from the
wheel of the version just below it (which must lack something, so the floor is the first
that works, not just any). ``scripts/bootstrap`` downloads both wheels (never installed);
this test downloads nothing.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
import tomllib
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import botocore

ROOT = Path(__file__).resolve().parents[2]
GATEWAYS = sorted((ROOT / "ampd" / "aws" / "gateway").glob("*.py"))
CLIENTS = {"_amp": "amp", "_iam": "iam", "_sts": "sts"}
# what botocore's paginators take that is not a parameter of the operation
PAGINATION_ONLY = {"PaginationConfig"}
CACHE = Path(os.environ.get("AMPD_TEST_CACHE", "/var/cache/ampd-test")) / "botocore-floor"


@dataclass
class Sent:
    """One client method ampd calls, and every parameter name it passes, anywhere."""

    service: str
    method: str
    params: set[str] = field(default_factory=set)
    paginated: bool = False
    where: list[str] = field(default_factory=list)


def _client_of(node: ast.expr) -> str | None:
    """``self._amp`` -> "amp"."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr in CLIENTS
    ):
        return CLIENTS[node.attr]
    return None


def _dict_keys(fn: ast.AST, name: str) -> set[str] | None:
    """The keys a function puts in the dict ``name``: its literal's keys and every
    ``name["key"] = ...``. None when ``name`` is built some other way."""
    keys: set[str] = set()
    built = False
    for node in ast.walk(fn):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for t in targets:
            if isinstance(t, ast.Name) and t.id == name:
                if not isinstance(value, ast.Dict) or None in value.keys:
                    return None
                for k in value.keys:
                    if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                        return None
                    keys.add(k.value)
                built = True
            elif (
                isinstance(t, ast.Subscript)
                and isinstance(t.value, ast.Name)
                and t.value.id == name
            ):
                if not (isinstance(t.slice, ast.Constant) and isinstance(t.slice.value, str)):
                    return None
                keys.add(t.slice.value)
    return keys if built else None


def _params(call: ast.Call, fn: ast.AST, where: str) -> set[str]:
    out: set[str] = set()
    assert not call.args, f"{where}: positional arguments to a botocore client method"
    for kw in call.keywords:
        if kw.arg is not None:
            out.add(kw.arg)
            continue
        assert isinstance(kw.value, ast.Name), f"{where}: ** of something not a local dict"
        keys = _dict_keys(fn, kw.value.id)
        assert keys is not None, f"{where}: cannot read the keys of **{kw.value.id}"
        out |= keys
    return out - PAGINATION_ONLY


def sent_by_ampd() -> dict[tuple[str, str], Sent]:
    found: dict[tuple[str, str], Sent] = {}

    def add(service: str, method: str, params: set[str], where: str, *, paged: bool) -> None:
        s = found.setdefault((service, method), Sent(service, method))
        s.params |= params
        s.paginated |= paged
        s.where.append(where)

    for path in GATEWAYS:
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
                if isinstance(node, ast.Attribute) and (service := _client_of(node.value)):
                    if node.attr == "get_paginator":
                        continue  # read with its paginate() call below
                    add(service, node.attr, set(), where, paged=False)
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                target = node.func.value
                if (service := _client_of(target)) and node.func.attr != "get_paginator":
                    add(service, node.func.attr, _params(node, fn, where), where, paged=False)
                elif (
                    node.func.attr == "paginate"
                    and isinstance(target, ast.Call)
                    and isinstance(target.func, ast.Attribute)
                    and target.func.attr == "get_paginator"
                    and (service := _client_of(target.func.value))
                ):
                    [arg] = target.args
                    assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), where
                    add(service, arg.value, _params(node, fn, where), where, paged=True)
    return found


# -- the floor and its wheels --------------------------------------------------------------


def floors() -> dict[str, str]:
    """``{"boto3": "1.x.y", "botocore": ..., "boto3-stubs": ...}`` from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    out: dict[str, str] = {}
    for dep in deps:
        m = re.fullmatch(r"(boto3|botocore|boto3-stubs)(?:\[[^\]]*\])?>=([0-9.]+)", dep)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def floor() -> str:
    return floors()["botocore"]


def below(version: str) -> str:
    major, minor, patch = (int(x) for x in version.split("."))
    assert patch > 0, f"no patch release below {version}: name the one below by hand"
    return f"{major}.{minor}.{patch - 1}"


def wheel(version: str) -> Path:
    path = CACHE / f"botocore-{version}-py3-none-any.whl"
    assert path.is_file(), (
        f"{path} is missing: run scripts/bootstrap (it downloads botocore {version}'s wheel "
        f"into {CACHE}, without installing it)"
    )
    return path


@dataclass(frozen=True)
class Model:
    operations: dict[str, set[str]]  # operation -> input member names
    paginated: dict[str, set[str]]  # operation -> what its paginator sends (token, limit)


@cache
def model(version: str, service: str) -> Model:
    with zipfile.ZipFile(wheel(version)) as z:
        names = z.namelist()
        prefix = f"botocore/data/{service}/"
        versions = sorted({n[len(prefix) :].split("/")[0] for n in names if n.startswith(prefix)})
        base = f"{prefix}{versions[-1]}/"
        if f"{base}service-2.json.gz" in names:
            doc = json.loads(gzip.decompress(z.read(f"{base}service-2.json.gz")))
        else:
            doc = json.loads(z.read(f"{base}service-2.json"))
        pages: dict[str, Any] = {}
        if f"{base}paginators-1.json" in names:
            pages = json.loads(z.read(f"{base}paginators-1.json")).get("pagination", {})
    shapes = doc["shapes"]
    operations: dict[str, set[str]] = {}
    for name, op in doc["operations"].items():
        shape = op.get("input", {}).get("shape")
        operations[name] = set(shapes[shape].get("members", {})) if shape else set()
    paginated: dict[str, set[str]] = {}
    for name, p in pages.items():
        tokens = p.get("input_token", [])
        paginated[name] = set([tokens] if isinstance(tokens, str) else tokens)
        paginated[name] |= {p["limit_key"]} if "limit_key" in p else set()
    return Model(operations, paginated)


def missing(version: str) -> list[str]:
    """What ampd sends that botocore ``version``'s models do not have."""
    out: list[str] = []
    for (service, method), sent in sorted(sent_by_ampd().items()):
        m = model(version, service)
        ops = {botocore.xform_name(op): op for op in m.operations}
        op = ops.get(method)
        if op is None:
            out.append(f"{service}.{method} (no such operation; {sent.where[0]})")
            continue
        params = set(sent.params)
        if sent.paginated:
            if op not in m.paginated:
                out.append(f"{service}.{op}: no paginator ({sent.where[0]})")
            params |= m.paginated.get(op, set())
        out += [f"{service}.{op}: {p} ({sent.where[0]})" for p in sorted(params - m.operations[op])]
    return out


# -- every field of every AMP request, nested ones included ------------------------------------


def _nested(expr: ast.expr | None, prefix: str, fn: ast.AST) -> set[str]:
    """The field paths an argument's expression builds: ``{"a": {"b": x}}`` under ``p``
    is ``p``, ``p.a``, ``p.a.b``; a list (or comprehension) of them steps in with ``[]``;
    a local name is followed to what it was assigned; anything else (``dict(labels)``, a
    number) is a value, a leaf."""
    out = {prefix}
    if isinstance(expr, ast.Name):
        assigned = [
            n.value
            for n in ast.walk(fn)
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == expr.id for t in n.targets)
        ]
        for value in assigned:
            out |= _nested(value, prefix, fn)
    elif isinstance(expr, ast.Dict):
        for k, v in zip(expr.keys, expr.values, strict=True):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                out |= _nested(v, f"{prefix}.{k.value}", fn)
    elif isinstance(expr, ast.List):
        for item in expr.elts:
            out |= _nested(item, f"{prefix}[]", fn)
    elif isinstance(expr, ast.ListComp):
        out |= _nested(expr.elt, f"{prefix}[]", fn)
    return out


def amp_fields() -> dict[str, set[str]]:
    """Client method -> every field path ampd can send in that AMP request."""
    found: dict[str, set[str]] = {}
    for path in GATEWAYS:
        tree = ast.parse(path.read_text(), str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and _client_of(node.func.value) == "amp"
                    and node.func.attr != "get_paginator"
                ):
                    continue
                fields = found.setdefault(node.func.attr, set())
                for kw in node.keywords:
                    if kw.arg is not None:
                        fields |= _nested(kw.value, kw.arg, fn)
                        continue
                    assert isinstance(kw.value, ast.Name)
                    fields |= _kwargs_fields(fn, kw.value.id)
    return found


def _kwargs_fields(fn: ast.AST, name: str) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(fn):
        if not isinstance(n, ast.Assign | ast.AnnAssign) or n.value is None:
            continue
        for t in n.targets if isinstance(n, ast.Assign) else [n.target]:
            if isinstance(t, ast.Name) and t.id == name and isinstance(n.value, ast.Dict):
                for k, v in zip(n.value.keys, n.value.values, strict=True):
                    assert isinstance(k, ast.Constant) and isinstance(k.value, str)
                    out |= _nested(v, k.value, fn)
            elif (
                isinstance(t, ast.Subscript)
                and isinstance(t.value, ast.Name)
                and t.value.id == name
                and isinstance(t.slice, ast.Constant)
            ):
                out |= _nested(n.value, str(t.slice.value), fn)
    return out


@cache
def amp_document(version: str) -> dict[str, Any]:
    with zipfile.ZipFile(wheel(version)) as z:
        names = [n for n in z.namelist() if n.startswith("botocore/data/amp/")]
        [name] = (
            sorted(n for n in names if n.endswith("/service-2.json.gz"))[-1:]
            or sorted(n for n in names if n.endswith("/service-2.json"))[-1:]
        )
        raw = z.read(name)
    return dict(json.loads(gzip.decompress(raw) if name.endswith(".gz") else raw))


def unknown_fields(version: str) -> list[str]:
    """The AMP request fields ampd can send that botocore ``version``'s amp model lacks."""
    doc = amp_document(version)
    shapes, ops = doc["shapes"], {botocore.xform_name(o): o for o in doc["operations"]}
    out: list[str] = []
    for method, paths in sorted(amp_fields().items()):
        op = ops.get(method)
        if op is None:
            out.append(f"amp.{method} (no such operation)")
            continue
        root = doc["operations"][op]["input"]["shape"]
        for path in sorted(paths):
            shape = shapes[root]
            for step in re.findall(r"[^.\[\]]+|\[\]", path):
                if shape.get("type") == "map":
                    break  # its keys are the caller's data
                if step == "[]" and shape.get("type") == "list":
                    shape = shapes[shape["member"]["shape"]]
                elif step in shape.get("members", {}):
                    shape = shapes[shape["members"][step]["shape"]]
                else:
                    out.append(f"amp.{op}: {path}")
                    break
    return out


def test_the_field_scan_sees_nested_fields() -> None:
    fields = amp_fields()
    assert {
        "limitsPerLabelSet[].labelSet",
        "limitsPerLabelSet[].limits.maxSeries",
        "outOfOrderTimeWindowInSeconds",
    } <= fields["update_workspace_configuration"]
    assert "retentionPeriodInDays" in fields["update_workspace_configuration"]
    assert {
        "destinations[].cloudWatchLogs.logGroupArn",
        "destinations[].filters.qspThreshold",
    } <= fields["create_query_logging_configuration"]
    assert fields["put_resource_policy"] == {"workspaceId", "policyDocument", "revisionId"}


def test_the_floor_knows_every_field_ampd_sends_to_amp() -> None:
    assert unknown_fields(floor()) == [], f"botocore {floor()} lacks fields ampd sends"


def test_the_release_below_the_floor_lacks_a_field_ampd_sends_to_amp() -> None:
    """The floor is the tightest: the release below it cannot send one of them."""
    assert unknown_fields(below(floor())), f"botocore {below(floor())} knows every field"


# -- the tests --------------------------------------------------------------------------------


def test_the_scan_sees_every_call_the_gateway_makes() -> None:
    """The scan itself: it finds the calls and parameters known to be there, including
    ones passed as ``**kwargs`` dicts and through paginators."""
    sent = sent_by_ampd()
    assert {"clientToken", "tags", "alias", "kmsKeyArn"} <= sent["amp", "create_workspace"].params
    assert "PermissionsBoundary" in sent["iam", "create_role"].params
    assert sent["amp", "update_workspace_configuration"].params == {
        "workspaceId",
        "retentionPeriodInDays",
        "outOfOrderTimeWindowInSeconds",
        "ruleQueryOffsetInSeconds",
        "limitsPerLabelSet",
    }
    assert sent["iam", "list_role_policies"].paginated
    assert sent["amp", "list_workspaces"].params == {"alias"}
    assert ("sts", "get_caller_identity") in sent  # passed uncalled, as the call itself
    assert len(sent) >= 40


def test_pyproject_floors_agree() -> None:
    f = floors()
    assert f["boto3"] == f["botocore"] == f["boto3-stubs"], f


def test_the_floor_has_everything_ampd_sends() -> None:
    assert missing(floor()) == [], f"botocore {floor()} lacks what ampd sends: raise the floor"


def test_the_version_below_the_floor_lacks_something() -> None:
    """Otherwise the floor is higher than it needs to be."""
    assert missing(below(floor())), f"botocore {below(floor())} has everything: lower the floor"


def test_the_installed_botocore_is_at_least_the_floor() -> None:
    have = tuple(int(x) for x in botocore.__version__.split(".")[:3])
    assert have >= tuple(int(x) for x in floor().split(".")), botocore.__version__
