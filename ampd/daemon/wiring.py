"""Choose and build the effectful collaborators: runtime, AWS side, instance facts."""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from ampd.gateways.runtime import Runtime
from ampd.gateways.store import Store
from ampd.gateways.supervisor import Supervisor
from ampd.observe.specfile import read_state_file
from ampd.spec.load import load_spec

log = structlog.get_logger()


def self_command() -> str:
    """How children call back into ampd (``ampd proxy``)."""
    env = os.environ.get("AMPD_SELF")
    if env:
        return env
    argv0 = Path(sys.argv[0])
    if argv0.name == "ampd" and argv0.exists():
        return str(argv0.absolute())
    return shutil.which("ampd") or "/usr/bin/ampd"


def _requested_runtime(state_path: Path) -> str:
    try:
        return load_spec(read_state_file(state_path), str(state_path)).spec.runtime
    except Exception:
        return "auto"


def make_runtime(state_path: Path, on_exit: Callable[[str], None]) -> Runtime:
    wanted = os.environ.get("AMPD_RUNTIME") or _requested_runtime(state_path)
    if wanted in ("systemd", "auto"):
        try:
            systemd = importlib.import_module("ampd.gateways.systemd")
        except ImportError:
            systemd = None
        if systemd is not None and (wanted == "systemd" or systemd.running_under_systemd()):
            rt: Runtime = systemd.SystemdRuntime()
            return rt
    return Supervisor(on_exit=on_exit)


def make_aws(store: Store) -> Any | None:
    try:
        mod = importlib.import_module("ampd.act.aws")
        gw = importlib.import_module("ampd.gateways.aws")
    except ImportError:
        return None
    return mod.AwsReconciler(gw.AwsGateway, store)


def aws_call_counts() -> Callable[[], dict[tuple[str, str], int]] | None:
    try:
        gw = importlib.import_module("ampd.gateways.aws")
    except ImportError:
        return None
    fn = getattr(gw, "api_call_counts", None)
    return fn if callable(fn) else None


def make_instance_facts() -> Callable[[], Mapping[str, str] | None] | None:
    try:
        imds = importlib.import_module("ampd.gateways.imds")
    except ImportError:
        return None
    fn = getattr(imds, "instance_labels", None)
    return fn if callable(fn) else None
