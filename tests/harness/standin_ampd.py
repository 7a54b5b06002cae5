"""A stand-in for ``ampd run`` inside a systemd box (``python -m tests.harness.standin_ampd``).

It does what the unit expects of the daemon and nothing else: ``READY=1`` once its
desired children are read, ``STATUS=`` lines, ``WATCHDOG=1`` from its loop (not while
``$AMPD_TEST_WEDGE_FILE`` exists), SIGHUP → ``RELOADING=1``, re-read, reconcile,
``READY=1``; SIGTERM → ``Runtime.shutdown()`` and exit 0. Child units are reconciled
through the real ``SystemdRuntime`` from ``$STANDIN_DESIRED`` (JSON:
``{"NAME": {"argv": [...], "env": {...}}}``), so the unit's sandbox, polkit and the
runtime are exercised together, with or without the real daemon.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

from ampd.gateways.paths import resolve_paths
from ampd.gateways.runtime import PROCESS_NAMES, Command
from ampd.gateways.systemd import SystemdRuntime
from tests.harness.runtime_driver import write_command

_flags = {"hup": False, "term": False}


GENERATED = resolve_paths().generated  # $STATE_DIRECTORY/generated, as ampd uses it


def notify(message: str) -> None:
    address = os.environ["NOTIFY_SOCKET"]
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def desired() -> dict[str, Command]:
    raw = json.loads(Path(os.environ["STANDIN_DESIRED"]).read_text())
    return {
        name: Command(name=name, argv=tuple(spec["argv"]), env=dict(spec.get("env", {})))
        for name, spec in raw.items()
    }


def reconcile(runtime: SystemdRuntime) -> int:
    want = desired()
    running = 0
    for name in PROCESS_NAMES:
        state = runtime.observe(name)
        command = want.get(name)
        if command is None:
            if state.running:
                runtime.stop(name)
                print(f"stopped {name}", flush=True)
            continue
        if not state.running:
            write_command(GENERATED, command)
            runtime.start(command)
            print(f"started {name}", flush=True)
        elif state.command != command:
            write_command(GENERATED, command)
            runtime.restart(command)
            print(f"restarted {name}", flush=True)
        running += 1
    return running


def _on(flag: str) -> object:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        _flags[flag] = True

    return handler


def main() -> int:
    signal.signal(signal.SIGHUP, _on("hup"))  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, _on("term"))  # type: ignore[arg-type]
    runtime = SystemdRuntime()
    wedge = os.environ.get("AMPD_TEST_WEDGE_FILE", "")
    passes = 1
    children = reconcile(runtime)
    notify(f"READY=1\nSTATUS=Standin · {children} children · pass {passes}")
    while not _flags["term"]:
        if _flags["hup"]:
            _flags["hup"] = False
            notify("RELOADING=1\nSTATUS=Reloading")
            passes += 1
            children = reconcile(runtime)
            notify(f"READY=1\nSTATUS=Standin · {children} children · pass {passes}")
        if wedge and Path(wedge).exists():
            time.sleep(0.1)
            continue
        notify("WATCHDOG=1")
        time.sleep(0.1)
    runtime.shutdown()
    notify("STOPPING=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
