"""SIGHUP reloads the proxy's settings on the same listening socket (#23).

``systemctl reload ampd-sigv4-proxy`` sends SIGHUP. The proxy used to die of it (a clean
exit, which ``Restart=on-failure`` ignores). Now it re-reads its settings file (allowed
users, workspace, upstream, region) and keeps its socket: the same port and the same
socket inode, and a client connecting all the while is never refused. A file that does
not parse keeps the settings in use."""

from __future__ import annotations

import json
import os
import pwd
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.aio import http_call
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_dataplane import REGION, WORKSPACE_ID
from tests.harness.wait import wait_for
from tests.proxy.test_proxy_peers import client_call

REPO = Path(__file__).resolve().parents[2]
NOBODY = pwd.getpwnam("nobody").pw_uid
OTHER_WS = "ws-reloaded-0002"


class ProxyProcess:
    """``python -m ampd.proxy`` with its JSON log lines collected as they come."""

    def __init__(self, config_path: Path) -> None:
        self.path = config_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ampd.proxy", "--config", str(config_path)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "unparsed", "line": line})

    def wait_event(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                doc = self.events.get(timeout=left)
            except queue.Empty:
                break
            if doc.get("event") == name:
                return doc
        raise AssertionError(f"no {name} within {timeout}s (exit code {self.proc.poll()})")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)  # EOF once the process is gone
            assert self.proc.stderr is not None
            self.proc.stderr.close()


def _listen_inode(port: int) -> str:
    """The inode of the socket LISTENing on 127.0.0.1:port (from /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        row = line.split()
        if row[1] == want and row[3] == "0A":
            return row[9]
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class Prober:
    """New connections to /healthz, back to back, until stopped; counts refusals."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status = http_call("GET", self.url + "/healthz", timeout=5).status
                if status == 200:
                    self.ok += 1
                else:
                    self.errors.append(f"HTTP {status}")
            except OSError as e:
                self.errors.append(f"{type(e).__name__}: {e}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def bare_dataplane(aws_keys: dict[str, str]) -> Iterator[DataPlane]:
    """The verifying stand-in, knowing a second workspace to reload to."""
    with DataPlane(aws_keys.get, {WORKSPACE_ID, OTHER_WS}, None, region=REGION) as dp:
        yield dp


@pytest.fixture
def settings(aws_env: str, bare_dataplane: DataPlane) -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:0",
        "region": REGION,
        "service": "aps",
        "upstream": bare_dataplane.url,
        "workspace_id": WORKSPACE_ID,
        "allowed_uids": [os.getuid()],
    }


def test_sighup_reloads_on_the_same_socket(
    tmp_path: Path, settings: dict[str, Any], bare_dataplane: DataPlane
) -> None:
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps(settings))
    proxy = ProxyProcess(path)
    try:
        url = proxy.wait_event("proxy.listening")["url"]
        port = int(url.rsplit(":", 1)[1])
        inode = _listen_inode(port)
        write = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"
        other = f"/workspaces/{OTHER_WS}/api/v1/remote_write"
        assert client_call("127.0.0.1", port, None, write)["status"] == 200
        assert client_call("127.0.0.1", port, NOBODY, write)["status"] == 403

        prober = Prober(url)
        wait_for(lambda: prober.ok >= 5, 10, 0.01, "five good probes before the reload")
        # new users, a new workspace: written in place (a reload reads whatever is there)
        path.write_text(
            json.dumps({**settings, "workspace_id": OTHER_WS, "allowed_uids": ["nobody"]})
        )
        proxy.proc.send_signal(signal.SIGHUP)
        reloaded = proxy.wait_event("proxy.reloaded")
        assert reloaded["workspace_id"] == OTHER_WS and reloaded["allowed_uids"] == [NOBODY]
        assert reloaded["url"] == url
        seen_before = len(bare_dataplane.seen)
        assert client_call("127.0.0.1", port, NOBODY, other)["status"] == 200
        assert client_call("127.0.0.1", port, NOBODY, write)["status"] == 403  # old workspace
        assert client_call("127.0.0.1", port, None, other)["status"] == 403  # root: not listed
        assert [s.path for s in bare_dataplane.seen[seen_before:]] == [other]

        # a file that does not parse: the settings in use stay, the error is logged
        path.write_text('{"listen": "127.0.0.1:0", "region": ')
        proxy.proc.send_signal(signal.SIGHUP)
        failed = proxy.wait_event("proxy.reload_failed")
        assert str(path) in failed["error"]
        assert client_call("127.0.0.1", port, NOBODY, other)["status"] == 200

        prober.stop()
        assert prober.errors == [], prober.errors[:5]
        assert prober.ok >= 5
        assert proxy.proc.poll() is None  # alive through both
        assert _listen_inode(port) == inode  # the very same listening socket
    finally:
        code = proxy.stop()
    assert code == 0


def test_a_reload_keeps_the_learnt_clock_offset(
    tmp_path: Path, settings: dict[str, Any], bare_dataplane: DataPlane
) -> None:
    """The offset is a fact about the host's clock, not about the settings."""
    bare_dataplane.clock_offset = 400.0
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps(settings))
    proxy = ProxyProcess(path)
    try:
        url = proxy.wait_event("proxy.listening")["url"]
        port = int(url.rsplit(":", 1)[1])
        write = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"
        assert client_call("127.0.0.1", port, None, write)["status"] == 200
        proxy.proc.send_signal(signal.SIGHUP)
        proxy.wait_event("proxy.reloaded")
        assert client_call("127.0.0.1", port, None, write)["status"] == 200
        assert dict(bare_dataplane.rejected) == {"expired": 1}
        health = http_call("GET", url + "/healthz").json()
        assert abs(health["clock_offset_seconds"] - 400.0) <= 2.0
    finally:
        assert proxy.stop() == 0
