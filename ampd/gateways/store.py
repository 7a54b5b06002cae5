"""ampd.json: what ampd must remember across restarts.

Workspace id and the clientToken (persisted *before* CreateWorkspace), the workspace's
record (where to write and query), the hash of what was last applied per resource (to
tell a desired change from drift), and the instance id (an instance started from a
baked AMI drops per-instance state).

Read-only by type: :class:`StoreView` only reads; :class:`Store` adds the writers. A
plan gets a ``StoreView``, so a plan cannot write ampd.json.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ampd.core import WorkspaceRecord
from ampd.gateways.files import atomic_write, read_bytes

__all__ = ["Store", "StoreView", "StoredState", "WorkspaceRecord"]


@dataclass
class StoredState:
    workspace_id: str | None = None
    client_token: str | None = None
    instance_id: str | None = None
    applied: dict[str, str] = field(default_factory=dict)  # str(ResourceKey) -> sha256
    workspace: WorkspaceRecord | None = None
    ingest: dict[str, Any] | None = None  # the last applied ingest estimate (ampd.ingest)

    def copy(self) -> StoredState:
        return replace(self, applied=dict(self.applied))


def _decode(raw: bytes | None) -> StoredState:
    if raw is None:
        return StoredState()
    try:
        data = json.loads(raw)
    except ValueError:
        return StoredState()  # a torn or hand-broken file: start over, AWS is the truth
    if not isinstance(data, dict):
        return StoredState()
    ws_data = data.get("workspace")
    if not isinstance(ws_data, dict):  # files written before the typed record
        extra = data.get("extra")
        old = extra.get("workspace") if isinstance(extra, dict) else None
        ws_data = old if isinstance(old, dict) else None
    applied = data.get("applied")

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    return StoredState(
        workspace_id=text("workspace_id"),
        client_token=text("client_token"),
        instance_id=text("instance_id"),
        applied={str(k): str(v) for k, v in applied.items()} if isinstance(applied, dict) else {},
        workspace=WorkspaceRecord.from_json(ws_data) if ws_data else None,
        ingest=data["ingest"] if isinstance(data.get("ingest"), dict) else None,
    )


def encode(state: StoredState) -> bytes:
    data: dict[str, Any] = {
        "workspace_id": state.workspace_id,
        "client_token": state.client_token,
        "instance_id": state.instance_id,
        "applied": dict(sorted(state.applied.items())),
        "workspace": state.workspace.to_json() if state.workspace is not None else None,
    }
    if state.ingest is not None:  # left out until an estimate is applied: older files alike
        data["ingest"] = state.ingest
    return json.dumps(data, indent=2, sort_keys=True).encode() + b"\n"


class StoreView:
    """Reads ampd.json. Has no way to write it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()

    def load(self) -> StoredState:
        with self.lock:
            return _decode(read_bytes(self.path))


class Store(StoreView):
    """Reads and writes ampd.json. Thread-safe: the AWS side and the local side update it
    from different threads; each update is a read-modify-write under one lock."""

    def update(self, fn: Callable[[StoredState], None]) -> StoredState:
        with self.lock:
            state = self.load()
            before = encode(state)
            fn(state)
            data = encode(state)
            if data != before:
                atomic_write(self.path, data, 0o600)
            return state

    def save(self, state: StoredState) -> None:
        with self.lock:
            atomic_write(self.path, encode(state), 0o600)
