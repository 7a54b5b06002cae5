"""The bytes of generated files: the :class:`Rendered` value, and the JSON encodings the
renderers share (JSON files, and JSON written as YAML). Pure."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Rendered", "json_file", "yaml_json"]


# What a YAML parser refuses to read literally (outside YAML's printable set: C0 and C1
# controls, surrogates, U+FFFE/U+FFFF), what YAML 1.1 parsers such as Prometheus' read as a
# line break (NEL, U+2028, U+2029), and the byte order mark. Everything else -- characters
# outside the BMP too -- is written as UTF-8: a \ud83d\ude00 pair is JSON, but not YAML.
_YAML_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]"
)


def yaml_json(data: Any) -> bytes:
    """``data`` as JSON that YAML parsers read back as the same value (JSON is YAML when
    its text stays inside YAML's printable characters); sorted keys, stable bytes."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


@dataclass(frozen=True)
class Rendered:
    name: str  # path relative to the generated directory
    data: bytes
    mode: int = 0o640

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def json_file(data: Any) -> bytes:
    """A generated JSON file: sorted keys, stable bytes, a final newline."""
    return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"
