"""ampd.json: what ampd must remember across restarts.

Workspace id and the clientToken (persisted *before* CreateWorkspace), the hash of what
was last applied per resource (to tell a desired change from drift), and the instance id
(an instance started from a baked AMI drops per-instance state).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ampd.gateways.files import atomic_write, read_bytes


@dataclass
class StoredState:
    workspace_id: str | None = None
    client_token: str | None = None
    instance_id: str | None = None
    applied: dict[str, str] = field(default_factory=dict)  # str(ResourceKey) -> sha256
    extra: dict[str, Any] = field(default_factory=dict)


class Store:
    """Thread-safe: the AWS side and the local side update it from different threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()

    def update(self, fn: Callable[[StoredState], None]) -> StoredState:
        """Read, modify with ``fn``, write back, under the store's lock."""
        with self.lock:
            state = self.load()
            fn(state)
            self.save(state)
            return state

    def load(self) -> StoredState:
        with self.lock:
            raw = read_bytes(self.path)
        if raw is None:
            return StoredState()
        try:
            data = json.loads(raw)
        except ValueError:
            return StoredState()  # a torn or hand-broken file: start over, AWS is the truth
        return StoredState(
            workspace_id=data.get("workspace_id"),
            client_token=data.get("client_token"),
            instance_id=data.get("instance_id"),
            applied=dict(data.get("applied", {})),
            extra=dict(data.get("extra", {})),
        )

    def save(self, state: StoredState) -> None:
        with self.lock:
            self._save(state)

    def _save(self, state: StoredState) -> None:
        data = {
            "workspace_id": state.workspace_id,
            "client_token": state.client_token,
            "instance_id": state.instance_id,
            "applied": dict(sorted(state.applied.items())),
            "extra": state.extra,
        }
        atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n", 0o600)
