"""Walk one value (a raw JSON value, or what botocore parsed from XML) against its botocore
shape, and an XML element against the elements its shape defines. Used by ``model_check``.

Every function appends what it finds to ``out`` as ``"path: what is wrong"`` strings.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape

__all__ = ["NOT_IN_BODY", "local", "timestamp_errors", "walk", "xml_extras"]

# members bound to these locations travel outside the body
NOT_IN_BODY = frozenset({"header", "headers", "statusCode", "uri", "querystring"})


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def xml_extras(elem: ET.Element, shape: Shape, path: str, out: list[str]) -> None:
    """Elements the shape does not define (botocore's parser silently drops them)."""
    t = shape.type_name
    if isinstance(shape, StructureShape):
        by_tag = {m.serialization.get("name", n): (n, m) for n, m in shape.members.items()}
        for child in elem:
            tag = local(child.tag)
            if tag not in by_tag:
                out.append(f"{_join(path, tag)}: not in {shape.name}")
                continue
            name, member = by_tag[tag]
            xml_extras(child, member, _join(path, name), out)
    elif isinstance(shape, ListShape):
        item = shape.member.serialization.get("name", "member")
        for i, child in enumerate(elem):
            if local(child.tag) != item:
                out.append(f"{path}[{i}]: <{local(child.tag)}> where the model says <{item}>")
                continue
            xml_extras(child, shape.member, f"{path}[{i}]", out)
    elif isinstance(shape, MapShape):
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        for child in elem:
            if local(child.tag) != "entry":
                out.append(f"{path}: <{local(child.tag)}> where the model says <entry>")
                continue
            for part in child:
                if local(part.tag) == value_tag:
                    xml_extras(part, shape.value, f"{path}{{}}", out)
                elif local(part.tag) != key_tag:
                    out.append(f"{path}: <{local(part.tag)}> inside a map <entry>")
    elif len(elem):
        out.append(f"{path}: child elements inside a {t}")


# ---------------------------------------------------------------- value walk


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def walk(value: Any, shape: Shape, path: str, out: list[str], ts: str) -> None:
    """Check one value against its shape. ``ts`` is the wire timestamp format, or
    ``"parsed"`` for values botocore already parsed (datetime, bytes, int...)."""
    where = path or "(body)"
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            out.append(f"{where}: {type(value).__name__}, the model says structure")
            return
        by_key = {
            m.serialization.get("name", n): (n, m)
            for n, m in shape.members.items()
            if m.serialization.get("location") not in NOT_IN_BODY
        }
        for key, item in value.items():
            if key not in by_key:
                out.append(f"{_join(path, key)}: not in {shape.name}")
                continue
            if item is None:
                continue
            walk(item, by_key[key][1], _join(path, key), out, ts)
        for req in shape.required_members:
            member = shape.members.get(req)
            if member is None or member.serialization.get("location") in NOT_IN_BODY:
                continue
            if value.get(member.serialization.get("name", req)) is None:
                out.append(f"{_join(path, req)}: required by {shape.name}, missing")
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            out.append(f"{where}: {type(value).__name__}, the model says list")
            return
        if value:  # an empty list is how AWS says "none", below an input-shaped min
            _bounds(len(value), meta, f"{where}: {len(value)} items", out)
        for i, item in enumerate(value):
            walk(item, shape.member, f"{path}[{i}]", out, ts)
        return
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            out.append(f"{where}: {type(value).__name__}, the model says map")
            return
        if value:
            _bounds(len(value), meta, f"{where}: {len(value)} entries", out)
        for k, v in value.items():
            walk(k, shape.key, f"{path}{{key {k!r}}}", out, ts)
            walk(v, shape.value, f"{path}{{{k!r}}}", out, ts)
        return
    _scalar(value, shape, where, out, ts)


def _scalar(value: Any, shape: Shape, where: str, out: list[str], ts: str) -> None:
    t = shape.type_name
    meta = shape.metadata
    if t == "string":
        if not isinstance(value, str):
            out.append(f"{where}: {type(value).__name__}, the model says string")
            return
        enum = shape.enum if isinstance(shape, StringShape) else []
        if enum and value not in enum:
            out.append(f"{where}: {value!r} not in {shape.name} {sorted(enum)}")
        _bounds(len(value), meta, f"{where}: length {len(value)}", out)
        _pattern(value, meta.get("pattern"), where, out)
    elif t in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{where}: {type(value).__name__}, the model says {t}")
            return
        _bounds(value, meta, f"{where}: {value}", out)
    elif t in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            out.append(f"{where}: {type(value).__name__}, the model says {t}")
            return
        _bounds(value, meta, f"{where}: {value}", out)
    elif t == "boolean":
        if not isinstance(value, bool):
            out.append(f"{where}: {type(value).__name__}, the model says boolean")
    elif t == "blob":
        if ts == "parsed":
            if not isinstance(value, (bytes, bytearray)):
                out.append(f"{where}: {type(value).__name__}, the model says blob")
        elif not isinstance(value, str):
            out.append(f"{where}: {type(value).__name__}, the model says base64 blob")
        else:
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error:
                out.append(f"{where}: not base64")
    elif t == "timestamp":
        if ts == "parsed":
            if not isinstance(value, datetime.datetime):
                out.append(f"{where}: {value!r} did not parse as a timestamp")
            return
        fmt = shape.serialization.get("timestampFormat", ts)
        out += [f"{where}: {e}" for e in timestamp_errors(value, fmt)]


def _bounds(n: float, meta: Mapping[str, Any], what: str, out: list[str]) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and n < lo:
        out.append(f"{what} < min {lo}")
    if hi is not None and n > hi:
        out.append(f"{what} > max {hi}")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None  # a Java-only construct: no check rather than a false alarm


def _pattern(value: str, pattern: str | None, where: str, out: list[str]) -> None:
    if pattern is None:
        return
    rx = _compiled(pattern)
    if rx is not None and rx.search(value) is None:
        out.append(f"{where}: {value!r} does not match the pattern {pattern!r}")


def timestamp_errors(value: Any, fmt: str) -> list[str]:
    if fmt == "unixTimestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{value!r} is not an epoch-seconds number"]
        return []
    if not isinstance(value, str):
        return [f"{value!r} is not a {fmt} timestamp string"]
    try:
        if fmt == "rfc822":
            email.utils.parsedate_to_datetime(value)
        else:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return [f"{value!r} is not a {fmt} timestamp"]
    return []
