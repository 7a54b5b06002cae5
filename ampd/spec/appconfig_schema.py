"""The state's JSON Schema as an AWS AppConfig validator (``ampd schema --appconfig``).

AppConfig's ``JSON_SCHEMA`` validators read JSON Schema draft-04, and a validator's
``Content`` is at most ``VALIDATOR_MAX_CHARS`` characters (botocore's ``appconfig`` model,
shape ``Validator``; a test holds the two equal). This module turns the draft 2020-12
schema ``ampd schema`` prints (from the same pydantic model) into that draft:

- ``$defs`` become ``definitions``, and every ``$ref`` follows them;
- ``const`` becomes a one-item ``enum``; a numeric ``exclusiveMinimum``/``exclusiveMaximum``
  becomes ``minimum``/``maximum`` with draft-04's boolean ``exclusive…``;
- annotations (``title``, ``description``, ``default``, ``examples``, ``$id``) and what
  draft-04 lacks or validators read differently (``propertyNames``, ``format``) are
  dropped: a dropped check refuses nothing, so the validator never refuses what
  ``ampd validate`` accepts;
- any other keyword draft-04 does not know is an error, not a silent drop, so a new
  pydantic keyword cannot weaken the validator unnoticed.

What stays refuses what it can: wrong types, unknown keys (``additionalProperties: false``
for every section, as the models forbid extras), enums, patterns, lengths, bounds and
required fields. Cross-field rules, the files a state names (promtool) and the model's
own checks run only in ``ampd validate`` on the host. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ampd.spec.schema import schema

__all__ = [
    "DRAFT_04",
    "VALIDATOR_MAX_CHARS",
    "SchemaTooLarge",
    "UnconvertibleKeyword",
    "appconfig_schema",
    "appconfig_schema_json",
    "to_draft_04",
]

DRAFT_04 = "http://json-schema.org/draft-04/schema#"
VALIDATOR_MAX_CHARS = 32768  # botocore appconfig model: Validator.Content max length

# draft-04's validation keywords (its meta-schema's properties, less the annotations)
_DRAFT_04_KEYWORDS = frozenset(
    {
        "$ref",
        "multipleOf",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "additionalItems",
        "items",
        "maxItems",
        "minItems",
        "uniqueItems",
        "maxProperties",
        "minProperties",
        "required",
        "additionalProperties",
        "definitions",
        "properties",
        "patternProperties",
        "dependencies",
        "enum",
        "type",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
    }
)
# dropped: annotations (size), and checks draft-04 lacks or that validators treat
# differently ("format": "date" is no draft-04 format; a YAML date is no JSON string)
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "readOnly",
        "writeOnly",
        "deprecated",
        "propertyNames",
        "format",
        "contentEncoding",
        "contentMediaType",
    }
)
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
_SCHEMA_VALUES = frozenset({"not", "additionalProperties", "additionalItems", "items"})


class UnconvertibleKeyword(ValueError):
    """The 2020-12 schema uses a keyword this converter has no draft-04 form for."""


class SchemaTooLarge(ValueError):
    """The converted schema is longer than an AppConfig validator may be."""


def _ref(target: str) -> str:
    """A ``$ref`` into ``$defs`` pointed at draft-04's ``definitions``."""
    prefix = "#/$defs/"
    return "#/definitions/" + target[len(prefix) :] if target.startswith(prefix) else target


def _bounds(out: dict[str, Any], exclusive: Mapping[str, Any]) -> None:
    """2020-12's numeric exclusive bounds as draft-04's bound plus boolean flag."""
    for keyword, value in exclusive.items():
        bound = "minimum" if keyword == "exclusiveMinimum" else "maximum"
        if isinstance(value, bool):  # already draft-04's form
            out[keyword] = value
            continue
        if bound in out:  # draft-04 has one bound per side: which one holds is unclear
            raise UnconvertibleKeyword(f"{keyword} beside {bound}")
        out[bound] = value
        out[keyword] = True


def _convert(node: Any, where: str) -> Any:
    """One schema (or sub-schema) in draft-04's form."""
    if not isinstance(node, Mapping):
        return node  # true/false schemas do not occur below additionalProperties
    out: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    for key, value in node.items():
        at = f"{where}/{key}"
        if key in _DROPPED:
            continue
        if key in _SCHEMA_MAPS:
            name = "definitions" if key == "$defs" else key
            out[name] = {k: _convert(v, f"{at}/{k}") for k, v in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [_convert(v, f"{at}/{i}") for i, v in enumerate(value)]
        elif key in _SCHEMA_VALUES:
            is_list = isinstance(value, list)
            out[key] = [_convert(v, at) for v in value] if is_list else _convert(value, at)
        elif key == "$ref":
            out[key] = _ref(value)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            exclusive[key] = value
        elif key in _DRAFT_04_KEYWORDS:
            out[key] = value
        else:
            raise UnconvertibleKeyword(f"{at}: no draft-04 form for {key!r}")
    _bounds(out, exclusive)
    return out


def to_draft_04(source: Mapping[str, Any]) -> dict[str, Any]:
    """``source`` (a draft 2020-12 schema) as a draft-04 schema, annotations dropped."""
    return {"$schema": DRAFT_04, **_convert(source, "#")}


def appconfig_schema() -> dict[str, Any]:
    """The state's schema in the form an AppConfig JSON_SCHEMA validator reads."""
    return to_draft_04(schema())


def appconfig_schema_json(limit: int | None = None) -> str:
    """The validator's Content: minified, keys sorted, one closing newline (the same
    bytes every time, and what ``file://`` hands AppConfig).

    Raises SchemaTooLarge when it is longer than ``limit`` characters: AppConfig would
    refuse the profile, and a schema cut short would refuse nothing or everything."""
    text = json.dumps(appconfig_schema(), separators=(",", ":"), sort_keys=True) + "\n"
    limit = VALIDATOR_MAX_CHARS if limit is None else limit
    if len(text) > limit:
        raise SchemaTooLarge(
            f"the AppConfig schema is {len(text)} characters, over AppConfig's {limit}"
        )
    return text
