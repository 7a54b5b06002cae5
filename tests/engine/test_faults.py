"""Faults: each one shows in status.json with its condition, stops nothing that works, and
heals by itself once the fault is gone — with no edit, restart or signal from anyone.

A daemon manages a workspace in the AWS emulator and runs a real Prometheus (remote write
off, so the local pipeline is whole without a data plane). Everything is read through the
status contract (docs/status-schema.md) and the processes themselves.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.aws_emulator import AwsEmulator
from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_aws import DATA_PLANE_URL, REGION, AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port, prometheus_pids
from tests.harness.imds import ImdsServer
from tests.harness.wait import wait_for

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]

RULES = "groups:\n  - name: node\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n"


BROKEN_RULES = "groups:\n  - name: node\n    rules:\n      - record: x\n        expr: sum(\n"


def process_not_healthy(proc: AmpdProcess) -> dict[str, Any] | None:
    r = proc.resource("process", "prometheus")
    return r if r is not None and r["health"] != "Healthy" else None


class Rig:
    def __init__(self, proc: AmpdProcess, aws: AwsEmulator, tmp: Path) -> None:
        self.proc = proc
        self.aws = aws
        self.prom_port = free_port()
        self.metrics_port = free_port()
        self.binary = "/usr/bin/prometheus"
        self.rules = tmp / "rules.yml"
        self.rules.write_text(RULES)
        self.jobs: list[dict[str, Any]] = [{"job": "app", "targets": ["127.0.0.1:1"]}]
        self.aws_extra: dict[str, Any] = {}

    def state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "stack": "faults",
            "aws": {
                "region": REGION,
                "data_plane_url": DATA_PLANE_URL,
                "resync": "2s",
                **self.aws_extra,
            },
            "workspace": {
                "alias": "faults",
                "rule_groups": [{"name": "node", "file": str(self.rules)}],
            },
            "prometheus": {
                "binary": self.binary,
                "listen": f"127.0.0.1:{self.prom_port}",
                "scrape_interval": "1s",
                "remote_write": None,
                "scrape_configs": self.jobs,
            },
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "runtime": "supervisor",
        }

    def write(self) -> None:
        self.proc.write_state(self.state())

    def start(self) -> int:
        self.write()
        self.proc.start()
        self.proc.wait_healthy(timeout=90)
        return self.prom_pid()

    def prom_pid(self) -> int:
        pids = prometheus_pids(str(self.proc.state_dir))
        assert len(pids) == 1, pids
        return pids[0]

    def prom_ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}/-/ready", timeout=3) as r:
            return bool(r.status == 200)

    def jobs_live(self) -> set[str]:
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=5) as r:
            import json  # noqa: PLC0415 (local to the one helper that needs it)

            doc = json.loads(r.read())
        return {t["labels"]["job"] for t in doc["data"]["activeTargets"]}

    def condition(self, ctype: str, status: str, timeout: float = 60) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (c := self.proc.condition(ctype)) and c["status"] == status and c,
                timeout,
                what=f"{ctype}={status}",
            )
        )

    def still_running(self, pid: int) -> None:
        """What worked before the fault still works: the same Prometheus, answering."""
        assert self.prom_pid() == pid
        assert self.prom_ready()
        wait_for(lambda: "app" in self.jobs_live(), 30, what="job app scraped")


@pytest.fixture
def rig(aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess, aws_emulator: AwsEmulator) -> Rig:
    aws_emulator.instant()  # the subject is faults, not AWS's transitions
    return Rig(ampd_proc, aws_emulator, ampd_proc.tmp)


# -- AWS ------------------------------------------------------------------------------------


def aws_says(rig: Rig, words: tuple[str, ...]) -> dict[str, Any]:
    """The workspace resource, once its message names the fault."""

    def said() -> dict[str, Any] | None:
        r = rig.proc.resource("aws.workspace", "faults")
        return r if r and any(w in (r["message"] or "") for w in words) else None

    return dict(wait_for(said, 60, what=f"aws.workspace saying one of {words}"))


def test_aws_throttling_storm(rig: Rig) -> None:
    """Throttling is not unreachability: AwsReachable stays True, the workspace is Unknown
    with the throttling message, and the roll-up is Unknown (``ampd status`` exits 3)."""
    pid = rig.start()
    rig.aws.throttle(None, times=None)
    res = aws_says(rig, ("ThrottlingException", "Rate exceeded"))
    assert res["health"] == "Unknown"
    wait_for(lambda: rig.proc.ampd("status").returncode == 3, what="ampd status exit 3")
    rig.still_running(pid)
    rig.aws.clear_faults()
    rig.proc.wait_healthy(timeout=90)
    rig.still_running(pid)


def test_aws_5xx_storm(rig: Rig) -> None:
    pid = rig.start()
    rig.aws.fail(None, times=None, status=503)
    res = aws_says(rig, ("503", "emulated server error", "InternalServer", "ServiceUnavailable"))
    assert res["health"] != "Healthy"
    wait_for(lambda: rig.proc.ampd("status").returncode == 3, what="ampd status exit 3")
    rig.still_running(pid)
    rig.aws.clear_faults()
    rig.proc.wait_healthy(timeout=90)
    rig.still_running(pid)


def test_aws_connections_dropped(rig: Rig) -> None:
    pid = rig.start()
    rig.aws.drop(None, times=None)
    cond = rig.condition("AwsReachable", "False")
    assert "Connection was closed" in cond["message"]
    assert rig.proc.ampd("status").returncode == 3
    rig.still_running(pid)
    rig.aws.clear_faults()
    rig.condition("AwsReachable", "True")
    rig.proc.wait_healthy(timeout=90)
    rig.still_running(pid)


def test_aws_connection_refused(rig: Rig) -> None:
    pid = rig.start()
    with socket.socket() as s:  # a port that refuses: bound, never listening
        s.bind(("127.0.0.1", 0))
        rig.aws_extra = {"endpoint_url": f"http://127.0.0.1:{s.getsockname()[1]}"}
        rig.write()
        cond = rig.condition("AwsReachable", "False")
        assert "Could not connect" in cond["message"]
        rig.still_running(pid)
    rig.aws_extra = {}
    rig.write()
    rig.condition("AwsReachable", "True")
    rig.proc.wait_healthy(timeout=60)
    rig.still_running(pid)


def test_imds_down(rig: Rig) -> None:
    port = free_port()
    imds = ImdsServer(region=REGION, port=port).start()
    rig.proc.extra_env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
    pid = rig.start()
    imds.stop()
    try:
        rig.jobs = [*rig.jobs, {"job": "while_imds_down", "targets": ["127.0.0.1:2"]}]
        rig.write()
        wait_for(
            lambda: "while_imds_down" in rig.jobs_live(), 60, what="the edit live without IMDS"
        )
        rig.still_running(pid)
    finally:
        imds = ImdsServer(region=REGION, port=port).start()
    try:
        rig.proc.wait_healthy(timeout=60)
        rig.still_running(pid)
    finally:
        imds.stop()


# -- the state directory -------------------------------------------------------------------


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    mount("--bind", str(path), str(path))
    try:
        mount("-o", "remount,ro,bind", str(path))
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def failing_file(rig: Rig, words: tuple[str, ...]) -> dict[str, Any]:
    def bad() -> dict[str, Any] | None:
        r = rig.proc.resource("file", "prometheus.yml")
        return r if r and any(w in (r["message"] or "") for w in words) else None

    return dict(wait_for(bad, 60, what="prometheus.yml reported failing"))


def test_state_dir_read_only(rig: Rig) -> None:
    """A read-only directory is reported, the old file and Prometheus kept; the write is
    retried with backoff until the directory is writable again (SIGHUP retries at once)."""
    pid = rig.start()
    generated = rig.proc.state_dir / "generated"
    before = (generated / "prometheus.yml").read_bytes()
    with read_only(generated):
        rig.jobs = [*rig.jobs, {"job": "later", "targets": ["127.0.0.1:2"]}]
        rig.write()
        res = failing_file(rig, ("Read-only file system",))
        assert (res["sync"], res["health"]) == ("OutOfSync", "Degraded")
        assert (generated / "prometheus.yml").read_bytes() == before
        rig.still_running(pid)
    assert rig.proc.proc is not None
    rig.proc.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "later" in rig.jobs_live(), 60, what="the edit live after the reload")
    rig.proc.wait_healthy(timeout=60)
    rig.still_running(pid)


def test_state_dir_full(rig: Rig) -> None:
    generated = rig.proc.state_dir / "generated"
    generated.mkdir(parents=True)
    mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(generated))
    try:
        pid = rig.start()
        before = (generated / "prometheus.yml").read_bytes()
        filler = generated / ".filler"
        with contextlib.suppress(OSError), filler.open("wb") as fh:
            while True:
                fh.write(b"x" * 4096)
                fh.flush()
        many = [{"job": f"job{i}", "targets": [f"127.0.0.{i % 250 + 1}:9"]} for i in range(60)]
        rig.jobs = [*rig.jobs, *many]
        rig.write()
        failing_file(rig, ("No space left",))
        assert (generated / "prometheus.yml").read_bytes() == before
        assert [p.name for p in generated.iterdir() if p.name.endswith(".tmp")] == []
        rig.still_running(pid)
        filler.unlink()
        wait_for(lambda: "job59" in rig.jobs_live(), 60, what="the edit live once there is room")
        rig.proc.wait_healthy(timeout=60)
        rig.still_running(pid)
    finally:
        rig.proc.stop()
        subprocess.run(["umount", str(generated)], check=True)


# -- Prometheus -----------------------------------------------------------------------------


def test_prometheus_binary_missing(rig: Rig, tmp_path: Path) -> None:
    binary = trusted_dir() / "prometheus"
    shutil.copy2("/usr/bin/prometheus", binary)
    rig.binary = str(binary)
    pid = rig.start()
    binary.rename(binary.with_name("gone"))
    subprocess.run(["kill", "-9", str(pid)], check=True)
    res = wait_for(
        lambda: (
            (r := rig.proc.resource("process", "prometheus")) and r["health"] != "Healthy" and r
        ),
        60,
        what="prometheus reported not running",
    )
    assert rig.proc.ampd("status").returncode in (2, 3)
    assert res["message"]
    binary.with_name("gone").rename(binary)
    wait_for(
        lambda: (r := rig.proc.resource("process", "prometheus")) and r["health"] == "Healthy",
        90,
        what="prometheus back",
    )
    assert rig.prom_ready()


def test_prometheus_port_taken(rig: Rig) -> None:
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", rig.prom_port))
    squatter.listen()
    try:
        rig.write()
        rig.proc.start()
        res = wait_for(
            lambda: (
                (r := rig.proc.resource("process", "prometheus")) and r["health"] != "Healthy" and r
            ),
            60,
            what="prometheus reported failing",
        )
        assert res["message"]
        wait_for(lambda: rig.proc.ampd("status").returncode in (2, 3), what="ampd still reports")
    finally:
        squatter.close()
    rig.proc.wait_healthy(timeout=90)
    assert rig.prom_ready()


# -- the state file and the files it names ------------------------------------------------


def test_rule_file_turns_invalid(rig: Rig) -> None:
    pid = rig.start()
    rig.rules.write_text(BROKEN_RULES)
    cond = rig.condition("SpecValid", "False")
    assert str(rig.rules) in cond["message"] or "rule" in cond["message"]
    doc = rig.proc.status() or {}
    assert str(rig.rules) in (doc["spec"]["error"] or "")
    rig.still_running(pid)
    rig.rules.write_text(RULES.replace("sum(up)", "count(up)"))
    rig.condition("SpecValid", "True")
    rig.proc.wait_healthy(timeout=60)
    rig.still_running(pid)


@pytest.mark.parametrize(
    ("replacement", "words"), [("deleted", "no such file"), ("dir", "directory")]
)
def test_state_file_deleted_or_a_directory(rig: Rig, replacement: str, words: str) -> None:
    pid = rig.start()
    state = rig.proc.state_file
    state.unlink()
    if replacement == "dir":
        state.mkdir()
    cond = rig.condition("SpecValid", "False")
    assert words in cond["message"]
    rig.still_running(pid)
    if replacement == "dir":
        state.rmdir()
    rig.jobs = [*rig.jobs, {"job": "back", "targets": ["127.0.0.1:2"]}]
    rig.write()
    rig.condition("SpecValid", "True")
    wait_for(lambda: "back" in rig.jobs_live(), 60, what="the restored file live")
    rig.still_running(pid)
