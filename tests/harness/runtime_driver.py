"""Drives ``SystemdRuntime`` inside a systemd box: JSON operations on stdin, JSON results
on stdout (``python -m tests.harness.runtime_driver``). Used by tests/test_systemd_box.py
so the runtime runs as the ``ampd`` user against the real systemd and polkit."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ampd.errors import AmpdError
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Command
from ampd.gateways.systemd import SystemdRuntime


def main() -> int:
    runtime = SystemdRuntime(Paths(Path("/var/lib/ampd"), Path("/run/ampd")))
    results: list[Any] = []
    for op, arg in json.load(sys.stdin):
        try:
            if op in ("start", "restart"):
                command = Command(name=arg["name"], argv=tuple(arg["argv"]), env=arg.get("env", {}))
                getattr(runtime, op)(command)
                results.append(None)
            elif op == "observe":
                state = dataclasses.asdict(runtime.observe(arg))
                results.append(state)
            else:
                getattr(runtime, op)(arg)
                results.append(None)
        except AmpdError as e:
            results.append({"error": type(e).__name__, "message": str(e)})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
