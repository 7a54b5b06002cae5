"""A small IAM policy evaluator: is one request allowed by a set of identity policies?

What it does, as AWS documents policy evaluation for one account:

- an explicit ``Deny`` in any policy wins; else an ``Allow`` is needed; else the implicit
  deny;
- with a permissions boundary, the request must also be allowed by the boundary;
- ``Action``/``NotAction`` match case-insensitively, ``Resource``/``NotResource``
  case-sensitively, both with the ``*`` and ``?`` wildcards;
- ``Condition``: ``StringEquals``, ``StringNotEquals``, ``StringLike``, ``StringNotLike``,
  ``ArnEquals``, ``ArnLike``, ``ArnNotEquals``, ``ArnNotLike``, ``Bool`` and ``Null``, each
  with ``...IfExists``; several values of one key are ORed, keys and operators are ANDed. A
  key the request does not carry fails a positive operator and passes a negated one.

What it refuses (``Unsupported``), so that a policy using it cannot pass a test by
accident: policy variables (``${...}``), ``ForAnyValue:``/``ForAllValues:``, numeric and
date operators, ``Principal`` (resource policies are not evaluated here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

Decision = Literal["allowed", "explicitDeny", "implicitDeny"]

__all__ = ["Decision", "Request", "Unsupported", "decide", "evaluate", "matched_statements"]


class Unsupported(ValueError):
    """The policy uses something this evaluator does not implement."""


@dataclass(frozen=True)
class Request:
    action: str  # service:Action
    resource: str  # an ARN, or "*" for actions without resource-level permissions
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        ctx = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{ctx}"


@lru_cache(maxsize=4096)
def _glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    if "${" in pattern:
        raise Unsupported(f"policy variables are not supported: {pattern}")
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE if ignore_case else 0)


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise Unsupported(f"not a string or a list: {value!r}")


def _any_match(patterns: Iterable[str], value: str, *, ignore_case: bool) -> bool:
    return any(_glob(p, ignore_case=ignore_case).match(value) for p in patterns)


_OPERATORS = {
    "StringEquals": ("equals", False),
    "StringNotEquals": ("equals", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "ArnEquals": ("like", False),  # AWS: ArnEquals and ArnLike behave the same
    "ArnLike": ("like", False),
    "ArnNotEquals": ("like", True),
    "ArnNotLike": ("like", True),
    "Bool": ("bool", False),
}


def _condition_holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    if operator.startswith(("ForAnyValue:", "ForAllValues:")):
        raise Unsupported(f"set operators are not supported: {operator}")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    present = key in context
    if base == "Null":
        want_null = str(expected).lower() == "true"
        return (not present) == want_null
    if base not in _OPERATORS:
        raise Unsupported(f"condition operator {operator} is not supported")
    kind, negated = _OPERATORS[base]
    if not present:
        return if_exists or negated
    actual = _listed(context[key])
    wanted = _listed(expected)
    if kind == "equals":
        hit = any(a == w for a in actual for w in wanted)
    elif kind == "like":
        hit = any(_any_match(wanted, a, ignore_case=False) for a in actual)
    else:  # bool
        hit = any(a.lower() == w.lower() for a in actual for w in wanted)
    return not hit if negated else hit


def _conditions_hold(condition: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            raise Unsupported(f"condition {operator} is not a mapping")
        for key, expected in block.items():
            if not _condition_holds(operator, key, expected, context):
                return False
    return True


def _statement_applies(st: Mapping[str, Any], req: Request) -> bool:
    if "Principal" in st or "NotPrincipal" in st:
        raise Unsupported("Principal: resource policies are not evaluated here")
    if "Action" in st:
        if not _any_match(_listed(st["Action"]), req.action, ignore_case=True):
            return False
    elif "NotAction" in st:
        if _any_match(_listed(st["NotAction"]), req.action, ignore_case=True):
            return False
    else:
        raise Unsupported("a statement needs Action or NotAction")
    if "Resource" in st:
        if not _any_match(_listed(st["Resource"]), req.resource, ignore_case=False):
            return False
    elif "NotResource" in st:
        if _any_match(_listed(st["NotResource"]), req.resource, ignore_case=False):
            return False
    else:
        raise Unsupported("a statement needs Resource or NotResource")
    return _conditions_hold(st.get("Condition") or {}, req.context)


def _statements(policy: Mapping[str, Any] | str) -> list[Mapping[str, Any]]:
    doc = json.loads(policy) if isinstance(policy, str) else policy
    statements = doc.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def matched_statements(
    policies: Iterable[Mapping[str, Any] | str], req: Request
) -> list[Mapping[str, Any]]:
    return [st for p in policies for st in _statements(p) if _statement_applies(st, req)]


def evaluate(policies: Iterable[Mapping[str, Any] | str], req: Request) -> Decision:
    """The decision of ``policies`` (identity policies of one principal) on ``req``."""
    effects = {str(st.get("Effect")) for st in matched_statements(policies, req)}
    if "Deny" in effects:
        return "explicitDeny"
    return "allowed" if "Allow" in effects else "implicitDeny"


def decide(
    policies: Iterable[Mapping[str, Any] | str],
    req: Request,
    boundary: Mapping[str, Any] | str | None = None,
) -> Decision:
    """The identity policies must allow ``req``, and the permissions boundary too when there
    is one; an explicit deny in either wins."""
    decision = evaluate(policies, req)
    limit = evaluate([boundary], req) if boundary is not None else "allowed"
    if "explicitDeny" in (decision, limit):
        return "explicitDeny"
    return "allowed" if decision == limit == "allowed" else "implicitDeny"
