"""Run the real ``ampd run`` as a subprocess against a state file in a temp directory."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# What "not yet" looks like while polling a process that is starting or restarting: a
# refused or reset connection, a file not written yet, an HTTP error status. Anything else
# (a KeyError, a JSON decode error, a failed assert) is a bug in the test or in ampd, and
# is raised at once instead of being retried until the deadline.
NOT_YET: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


class AmpdProcess:
    log_level: str | None = None  # e.g. "debug": ``ampd --log-level debug run``

    def __init__(self, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.state_file = tmp / "etc" / "state.yml"
        self.state_dir = tmp / "state"
        self.runtime_dir = tmp / "run"
        self.log_path = tmp / "ampd.log"
        self.extra_env = env or {}
        self.wrap: list[str] = []  # a command line it runs under (nsenter into a namespace)
        self.proc: subprocess.Popen[bytes] | None = None
        self.state_file.parent.mkdir(parents=True, exist_ok=True)

    # ---- state file ------------------------------------------------------------------
    def write_state(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.state_file)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        env.update(
            STATE_DIRECTORY=str(self.state_dir),
            RUNTIME_DIRECTORY=str(self.runtime_dir),
            AMPD_SELF=str(Path(sys.executable).parent / "ampd"),
            AMPD_RUNTIME="supervisor",
        )
        env.update(self.extra_env)
        return {k: v for k, v in env.items() if v != ""}  # "" in extra_env unsets

    def ampd(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "ampd"), "--state", str(self.state_file), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=check,
        )

    # ---- daemon ----------------------------------------------------------------------
    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *self.wrap,
                str(Path(sys.executable).parent / "ampd"),
                "--log-format",
                "json",
                *(("--log-level", self.log_level) if self.log_level else ()),
                "--state",
                str(self.state_file),
                "run",
            ],
            env=self.env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def print_log_tail(self, lines: int = 60) -> None:
        if self.log_path.exists():
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- last {len(tail)} lines of {self.log_path} ---", *tail, sep="\n")
        status = self.status()
        if status is not None:
            print("--- status.json ---", json.dumps(status, indent=1)[:4000], sep="\n")

    def status(self) -> dict[str, Any] | None:
        """status.json, or None before ampd wrote it. ampd replaces it atomically
        (temp file + rename), so a file that does not parse is a bug, never "not yet"."""
        try:
            text = (self.runtime_dir / "status.json").read_text()
        except FileNotFoundError:
            return None
        data: dict[str, Any] = json.loads(text)
        return data

    def resource(self, kind: str, name: str) -> dict[str, Any] | None:
        doc = self.status()
        for r in (doc or {}).get("resources", []):
            if r["kind"] == kind and r["name"] == name:
                return dict(r)
        return None

    def condition(self, ctype: str) -> dict[str, Any] | None:
        for c in (self.status() or {}).get("conditions", []):
            if c["type"] == ctype:
                return dict(c)
        return None

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.logs() if e.get("event") == name]

    def log_mark(self) -> int:
        """How many log lines ampd has written so far (for ``wait_applied``)."""
        return (
            len(self.log_path.read_text(errors="replace").splitlines())
            if self.log_path.exists()
            else 0
        )

    def applied_since(self, mark: int) -> set[tuple[str, str]]:
        """(key, action) of every change ampd applied after log line ``mark``."""
        return self._applied_since(mark)[0]

    def _applied_since(self, mark: int) -> tuple[set[tuple[str, str]], set[str], set[str]]:
        """What was applied after log line ``mark``, by which passes (reconcile ids), and
        which passes have ended (their summary line: status.json was written before it)."""
        lines = self.log_path.read_text(errors="replace").splitlines()[mark:]
        out: set[tuple[str, str]] = set()
        passes: set[str] = set()
        ended: set[str] = set()
        for line in lines:
            with contextlib.suppress(ValueError):
                e = json.loads(line)
                if e.get("event") == "change.applied":
                    out.add((str(e["key"]), str(e["action"])))
                    passes.add(str(e.get("reconcile_id")))
                elif e.get("event") == "reconcile.summary":
                    ended.add(str(e.get("reconcile_id")))
        return out, passes, ended

    def wait_applied(
        self, mark: int, *expected: tuple[str, str], timeout: float = 20.0
    ) -> set[tuple[str, str]]:
        """Wait until ampd applied every ``expected`` (key, action) after log line ``mark``
        and the passes that did so have ended (so status.json is theirs or later); returns
        everything it applied since then. Unlike ``status()["last_pass"]``, the log keeps a
        pass's changes when the next pass (set off by ampd's own write into
        ``generated/``, say) overwrites status.json a moment later."""
        want = set(expected)

        def done() -> set[tuple[str, str]] | None:
            got, passes, ended = self._applied_since(mark)
            return got if got >= want and passes <= ended else None

        return set(wait_for(done, timeout, what=f"ampd to apply {sorted(want)}"))

    def wait_spec(self, timeout: float = 20.0) -> dict[str, Any]:
        """A status written by a pass on the state file as it is now. Not necessarily the
        first such pass: its ``last_pass`` may already describe a later one (use
        ``wait_applied`` to see what a change of the state file made ampd do)."""
        want = hashlib.sha256(self.state_file.read_bytes()).hexdigest()
        return dict(
            wait_for(
                lambda: (s := self.status()) and s["spec"]["sha256"] == want and s,
                timeout,
                what="a pass on the current state file",
            )
        )

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (
                    (s := self.status())
                    and s["sync"] == "Synced"
                    and s["health"] == "Healthy"
                    and s
                ),
                timeout,
                what="ampd Synced and Healthy",
            )
        )

    def wait_pass_after(self, t: float, timeout: float = 20.0) -> dict[str, Any]:
        """The first status written by a pass that started after wall-clock ``t``."""

        def newer() -> dict[str, Any] | None:
            s = self.status()
            if s is None:
                return None
            started = datetime.fromisoformat(s["last_pass"]["started_at"]).timestamp()
            return s if started >= t else None

        return dict(wait_for(newer, timeout, what="a pass after the edit"))


@pytest.fixture
def ampd_proc(tmp_path: Path) -> Iterator[AmpdProcess]:
    proc = AmpdProcess(tmp_path)
    yield proc
    proc.stop()
    proc.print_log_tail()  # pytest shows it only when the test failed


def prometheus_pids(marker: str) -> list[int]:
    """Pids of processes whose command line mentions ``marker`` (a tmp path)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd and "prometheus" in cmd:
            out.append(int(d.name))
    return out
