"""What rendering needs besides the spec: facts observed elsewhere, passed in as values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ampd.core import WorkspaceRecord

WorkspaceFacts = WorkspaceRecord  # one typed record of where the workspace is


@dataclass(frozen=True)
class RenderContext:
    source: str  # the state file path, for the generated-file header
    state_dir: str
    workspace: WorkspaceFacts | None = None
    instance_labels: Mapping[str, str] = field(default_factory=dict)
    prometheus_can_sign: bool = False  # Prometheus >= 2.43 signs sigv4 remote_write itself
    grafana_major: int | None = None
    python: str = "/usr/bin/ampd"  # how child processes call back into ampd
    # process -> the user it runs as (ampd.gateways.users); empty: the packaged users
    process_users: Mapping[str, str] = field(default_factory=dict)
