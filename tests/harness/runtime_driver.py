"""Drives ``SystemdRuntime`` inside a systemd box: JSON operations on stdin, JSON results
on stdout (``python -m tests.harness.runtime_driver``). Used by tests/system/test_systemd_box.py
so the runtime runs as the ``ampd`` user against the real systemd and polkit."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ampd.errors import AmpdError
from ampd.gateways.files import atomic_write, read_bytes
from ampd.gateways.paths import Paths
from ampd.gateways.runtime import Command
from ampd.gateways.systemd import SystemdRuntime


def write_command(generated: Path, command: Command) -> None:
    """What ampd's local side does before it starts a child: NAME.cmd.json, the file the
    child unit's ``ampd exec NAME`` reads (the runtime itself never writes it)."""
    body: dict[str, Any] = {"argv": list(command.argv), "env": dict(command.env)}
    data = (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()
    if read_bytes(generated / f"{command.name}.cmd.json") != data:
        atomic_write(generated / f"{command.name}.cmd.json", data, mode=0o640)


def main() -> int:
    paths = Paths(Path("/var/lib/ampd"), Path("/run/ampd"))
    runtime = SystemdRuntime(paths)
    results: list[Any] = []
    for op, arg in json.load(sys.stdin):
        try:
            if op in ("start", "restart"):
                command = Command(name=arg["name"], argv=tuple(arg["argv"]), env=arg.get("env", {}))
                write_command(paths.generated, command)
                getattr(runtime, op)(command)
                results.append(None)
            elif op == "set_imds":
                runtime.set_imds(arg["name"], arg["allowed"])
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
