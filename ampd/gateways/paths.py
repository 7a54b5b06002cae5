"""Where ampd keeps its files. systemd's STATE_DIRECTORY / RUNTIME_DIRECTORY win."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_FILE = Path("/etc/ampd/state.yml")


@dataclass(frozen=True)
class Paths:
    state_dir: Path  # generated configs, Prometheus data, ampd.json
    runtime_dir: Path  # status.json

    @property
    def store(self) -> Path:
        return self.state_dir / "ampd.json"

    @property
    def status(self) -> Path:
        return self.runtime_dir / "status.json"

    @property
    def generated(self) -> Path:
        return self.state_dir / "generated"

    def data_dir(self, name: str) -> Path:
        return self.state_dir / "data" / name


def resolve_paths() -> Paths:
    # systemd may pass several colon-separated directories; the first is ours.
    state = os.environ.get("STATE_DIRECTORY", "/var/lib/ampd").split(":")[0]
    runtime = os.environ.get("RUNTIME_DIRECTORY", "/run/ampd").split(":")[0]
    return Paths(Path(state), Path(runtime))


def state_file_from_env(cli_value: str | None) -> Path:
    return Path(cli_value or os.environ.get("AMPD_STATE") or DEFAULT_STATE_FILE)
