"""A real Prometheus (Debian's /usr/bin/prometheus) in a temporary directory.

with Prometheus() as receiver:                       # server + remote-write receiver
    receiver.wait_for("up")

python -m tests.harness.prom --port 0 [--mode agent] [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal, Self

from ampd.errors import AmpdError
from ampd.gateways.promreload import confirm_reload
from tests.harness.aio import LOOPBACK, free_port, run_standalone
from tests.harness.lifecycle import StartStop
from tests.harness.wait import wait_for

BINARY = "/usr/bin/prometheus"
DEFAULT_CONFIG = "global:\n  scrape_interval: 15s\n"


class PrometheusError(RuntimeError):
    pass


def prometheus_available(binary: str = BINARY) -> bool:
    return Path(binary).is_file()


class Prometheus(StartStop):
    """One Prometheus process on a free 127.0.0.1 port, with its own data directory.

    ``mode="server"`` keeps a TSDB and (with ``remote_write_receiver``) accepts
    remote-write on ``/api/v1/write``; ``mode="agent"`` only scrapes and forwards.
    ``config`` is prometheus.yml text; it may contain ``{workdir}``, replaced by the
    temporary directory's path.
    """

    def __init__(
        self,
        config: str = DEFAULT_CONFIG,
        *,
        mode: Literal["server", "agent"] = "server",
        remote_write_receiver: bool = True,
        binary: str = BINARY,
        port: int = 0,
        workdir: Path | None = None,
        ready_timeout: float = 30.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.mode = mode
        self.remote_write_receiver = remote_write_receiver
        self.binary = binary
        self.requested_port = port
        self.port = 0
        self.ready_timeout = ready_timeout
        self.extra_args = tuple(extra_args)
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ampd-prom-"))
        self.config_path = self.workdir / "prometheus.yml"
        self.log_path = self.workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _argv(self, port: int) -> list[str]:
        argv = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=info",
        ]
        if self.mode == "agent":
            argv += ["--enable-feature=agent", f"--storage.agent.path={self.workdir / 'wal'}"]
        else:
            argv += [f"--storage.tsdb.path={self.workdir / 'data'}"]
            if self.remote_write_receiver:
                argv.append("--web.enable-remote-write-receiver")
        return argv + list(self.extra_args)

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config.replace("{workdir}", str(self.workdir)))
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            self._log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                self._argv(self.port),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                self._wait_ready()
                return self
            except PrometheusError:
                bind_race = "address already in use" in self.logs()
                self._terminate()
                if not bind_race or attempt == attempts - 1:
                    self._cleanup_dir()
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        process = self.process
        assert process is not None

        def ready() -> bool:
            if process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {process.returncode}:\n{self.logs()[-2000:]}"
                )
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                return bool(r.status == 200)

        try:
            wait_for(ready, self.ready_timeout, what="prometheus ready", retry_on=(OSError,))
        except AssertionError as e:  # start() stops a Prometheus that failed to start
            raise PrometheusError(f"{e}:\n{self.logs()[-2000:]}") from e

    def _terminate(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _cleanup_dir(self) -> None:
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop(self) -> None:
        self._terminate()
        self._cleanup_dir()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- HTTP helpers ------------------------------------------------------------

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET /api/v1/<path> and return its ``data`` (raises on status != success)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as r:
                doc = json.load(r)
        except urllib.error.HTTPError as e:
            raise PrometheusError(f"{path}: HTTP {e.code}: {e.read()[:500]!r}") from None
        if doc.get("status") != "success":
            raise PrometheusError(f"{path}: {doc}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
        data = self.api("query", {"query": expr})
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(
        self,
        expr: str,
        timeout: float = 30.0,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
    ) -> list[dict[str, Any]]:
        """Poll ``query(expr)`` until ``predicate(result)`` holds or ``timeout`` passes."""
        return wait_for(
            lambda: self.query(expr),
            timeout,
            0.2,
            f"{expr!r} to meet its condition",
            until=lambda result: predicate(result or []),
            retry_on=(),
        )

    def own_metric(self, name: str) -> float:
        """The sum of one of Prometheus' own /metrics series (works in agent mode)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def reload(self) -> None:
        """SIGHUP, as ampd reloads its own Prometheus (no lifecycle endpoint), and wait
        until Prometheus' metrics say the new file took; raises if it was refused."""
        assert self.process is not None
        pid = self.process.pid
        try:
            confirm_reload(
                f"{LOOPBACK}:{self.port}",
                lambda: os.kill(pid, signal.SIGHUP),
                lambda: self.logs().splitlines()[-20:],
            )
        except AmpdError as e:
            raise PrometheusError(f"reload: {e}") from e


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.prom")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=["server", "agent"], default="server")
    parser.add_argument("--config", type=Path, default=None, help="prometheus.yml to use")
    parser.add_argument("--binary", default=BINARY)
    args = parser.parse_args(argv)
    prom = Prometheus(
        args.config.read_text() if args.config else DEFAULT_CONFIG,
        mode=args.mode,
        binary=args.binary,
        port=args.port,
    )

    def start() -> dict[str, Any]:
        prom.start()
        return {
            "url": prom.url,
            "mode": prom.mode,
            "remote_write_url": f"{prom.url}/api/v1/write",
            "workdir": str(prom.workdir),
            "pid": prom.process.pid if prom.process else None,
        }

    return run_standalone(start, prom.stop)


if __name__ == "__main__":
    raise SystemExit(main())
