"""Redaction of secrets in log events. Pure.

Two rules, applied to every event before it is rendered (ampd.logs):

- **By name.** The value of a field whose name says it is a secret (``password``,
  ``secret``, ``token``, ``authorization``, ``credentials``, ``session_token``, ...), at any
  depth of a dict, becomes ``[REDACTED]``. Names that only *refer* to a secret keep their
  value: ``credentials_file``, ``token_ttl``, ``access_key_id``, ``secret_arn``. Inside
  strings, ``name=value`` / ``name: value`` pairs with such names, and ``Basic``/``Bearer``
  credentials, are redacted the same way.
- **By shape, anywhere in a string** (exception messages and tracebacks too): a
  40-character AWS secret access key, an STS session token (``IQoJb3JpZ2luX2Vj...``,
  ``FwoGZXIvYXdzE...``) or any other base64 blob of 100 characters or more. Base64 secrets
  mix upper and lower case with digits; hex digests (sha256), ARNs, instance and workspace
  ids, uuids and paths do not look like that and survive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["REDACTED", "redact_event", "redact_text", "secret_name"]

REDACTED = "[REDACTED]"

_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "credential",
    "api_key",
    "apikey",
    "private_key",
    "cookie",
    "signature",
)
# a name that refers to a secret without holding one
_REFERENCE_SUFFIXES = (
    "_file",
    "_path",
    "_dir",
    "_ttl",
    "_seconds",
    "_count",
    "_total",
    "_id",
    "_ids",
    "_arn",
    "_name",
    "_present",
    "_set",
    "_source",
    "_expiration",
    "_expires",
    "_expires_at",
)

_WORDS = "|".join(re.escape(w) for w in _SECRET_WORDS)
# name=value, name: value, "name": "value", x-aws-ec2-metadata-token: value
_PAIR_RE = re.compile(
    rf"""(?ix)
    (\b[\w.-]*(?:{_WORDS})[\w-]*)      # the name
    (["']?\s*[:=]\s*["']?)              # = or :, maybe quoted
    (?!\[REDACTED\])
    ((?<=")[^"]+|(?<=')[^']+|[^\s"',;&}}\]\)]+)  # quoted: up to the quote; else a word
    """
)
_AUTH_RE = re.compile(r"(?i)\b(Basic|Bearer|AWS4-HMAC-SHA256)\s+([A-Za-z0-9+/=._~,:=-]{8,})")
_B64 = "A-Za-z0-9+/"
_SECRET_KEY_RE = re.compile(rf"(?<![{_B64}])[{_B64}]{{40}}(?![{_B64}=])")
_BLOB_RE = re.compile(rf"(?<![{_B64}_-])[{_B64}_-]{{100,}}={{0,2}}")
_STS_RE = re.compile(r"(?:IQoJb3JpZ2luX2Vj|FwoGZXIvYXdzE)[A-Za-z0-9+/=_-]*")


def secret_name(name: str) -> bool:
    low = name.lower().replace("-", "_")
    if not any(w in low for w in _SECRET_WORDS):
        return False
    return not low.endswith(_REFERENCE_SUFFIXES)


def _mixed(s: str) -> bool:
    """Random base64: upper case, lower case and digits together."""
    return (
        any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s)
    )


def _prose(sep: str, value: str) -> bool:
    """``credentials: permission denied`` is a sentence, not a pair: after a bare ``: ``
    only a value that looks made up (digits, capitals, symbols, or long) is a secret."""
    if "=" in sep or "'" in sep or '"' in sep or not sep.endswith((" ", "\t")):
        return False
    made_up = any(not c.isalpha() or c.isupper() for c in value) or len(value) >= 16
    return not made_up


def _pair(m: re.Match[str]) -> str:
    name, sep, value = m.group(1), m.group(2), m.group(3)
    if not secret_name(name) or _prose(sep, value):
        return m.group(0)
    return f"{name}{sep}{REDACTED}"


def _shaped(m: re.Match[str]) -> str:
    return REDACTED if _mixed(m.group(0)) else m.group(0)


def redact_text(text: str) -> str:
    text = _STS_RE.sub(REDACTED, text)
    text = _AUTH_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PAIR_RE.sub(_pair, text)
    text = _BLOB_RE.sub(_shaped, text)
    return _SECRET_KEY_RE.sub(_shaped, text)


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _field(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_value(v) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


def _field(name: str, value: Any) -> Any:
    if secret_name(name) and value not in (None, "", True, False):
        return REDACTED
    return _value(value)


def redact_event(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The structlog processor: see the module docstring."""
    for k in list(event_dict):
        event_dict[k] = _field(k, event_dict[k])
    return event_dict
