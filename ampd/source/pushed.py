"""The bytes of the files a spec pushes to AWS, read once per good version."""

from __future__ import annotations

from pathlib import Path

from ampd.gateways.files import read_bytes
from ampd.spec.models import StateSpec


def read_pushed_files(spec: StateSpec) -> dict[str, bytes | None]:
    """The bytes of every rule and alert manager file the spec names (None: unreadable)."""
    out: dict[str, bytes | None] = {}
    for named in spec.named_files():
        if named.pushed:
            try:
                out[named.path] = read_bytes(Path(named.path))
            except OSError:
                out[named.path] = None
    return out
