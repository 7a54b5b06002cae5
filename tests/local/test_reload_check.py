"""A running Prometheus is the check of a prometheus.yml it only reloads (act/local.py):
promtool is not run on that path; a reload that fails puts the previous file back."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ampd.core import (
    Action,
    Change,
    Command,
    ConditionStatus,
    Kind,
    Outcome,
    ProcessState,
    ResourceKey,
)
from ampd.errors import PermanentError, TemporaryError
from ampd.gateways import promreload
from ampd.gateways.files import FileWriter
from ampd.local.act import apply as local_act
from ampd.local.observe import promconfig
from ampd.local.render.encoding import Rendered
from tests.harness.prom import Prometheus
from tests.harness.prombins import PromBin
from tests.harness.wait import wait_for
from tests.local.passes import FlakyRuntime

OLD = b"global:\n  scrape_interval: 15s\n"
NEW = b"global:\n  scrape_interval: 30s\n"
# valid YAML that Prometheus refuses to load (the regexp does not compile)
BAD = NEW + b'scrape_configs:\n  - job_name: a\n    relabel_configs: [{regex: "("}]\n'
FILE = ResourceKey(Kind.FILE, "prometheus.yml")
PROC = ResourceKey(Kind.PROCESS, "prometheus")


class ReloadStub:
    """Speaks what ampd reads of a Prometheus around a reload: its own /metrics
    (``prometheus_config_last_reload_successful`` and the success timestamp, in whole
    seconds as some builds export it) and a log line on a refused reload. ``hup`` is the
    SIGHUP: it counts, and takes the new file when ``accept``, else refuses it."""

    def __init__(self) -> None:
        self.accept = True
        self.calls = 0
        self.successful = 1
        self.success_time = float(int(time.time()))  # the current second: ampd must wait
        self.log: list[str] = ['level=info msg="Server is ready to receive web requests."']
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = (
                    f"prometheus_config_last_reload_successful {stub.successful}\n"
                    "prometheus_config_last_reload_success_timestamp_seconds "
                    f"{stub.success_time:.9e}\n"
                ).encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def hup(self) -> None:
        self.calls += 1
        if self.accept:
            self.successful, self.success_time = 1, float(int(time.time()))
        else:
            self.successful = 0
            self.log.append('level=error msg="Error reloading config" err="bad regexp"')

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


class SignalRuntime(FlakyRuntime):
    """A runtime whose reload is ``hup`` (the supervisor's os.kill SIGHUP) and whose
    observe returns ``log`` as the process' last stderr lines."""

    def __init__(self, hup: Callable[[], None], log: Callable[[], Sequence[str]]) -> None:
        super().__init__()
        self.broken = False
        self._hup = hup
        self._log = log

    def reload(self, name: str) -> None:
        self._hup()

    def observe(self, name: str) -> ProcessState:
        return ProcessState(name, running=True, last_stderr=tuple(self._log()[-20:]))


@pytest.fixture
def stub() -> Iterator[ReloadStub]:
    s = ReloadStub()
    s.thread.start()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def stub_runtime(stub: ReloadStub) -> SignalRuntime:
    return SignalRuntime(stub.hup, lambda: stub.log)


def counting_promtool(tmp_path: Path) -> tuple[str, Path]:
    counter = tmp_path / "promtool-calls"
    tool = tmp_path / "promtool"
    tool.write_text(f'#!/bin/sh\necho x >> "{counter}"\necho "FAILED: rejected" >&2\nexit 1\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool), counter


def targets(
    tmp_path: Path, listen: str, promtool: str, new: bytes = NEW, runtime: Any = None
) -> local_act.LocalTargets:
    generated = tmp_path / "generated"
    generated.mkdir(exist_ok=True)
    (generated / "prometheus.yml").write_bytes(OLD)
    runtime = runtime if runtime is not None else FlakyRuntime()
    cmd = Command("prometheus", ("prometheus",))
    return local_act.LocalTargets(
        {"prometheus.yml": Rendered("prometheus.yml", new)},
        generated,
        runtime,
        {"prometheus": cmd},
        {"prometheus": listen},
        promtool,
        FileWriter(),
    )


def by_key(outcomes: list[Outcome]) -> dict[ResourceKey, Outcome]:
    return {o.change.key: o for o in outcomes}


EDIT = [Change(FILE, Action.UPDATE), Change(PROC, Action.RELOAD)]


def test_an_accepted_reload_keeps_the_new_file_and_runs_no_promtool(
    tmp_path: Path, stub: ReloadStub
) -> None:
    promtool, counter = counting_promtool(tmp_path)
    t = targets(tmp_path, stub.listen, promtool, runtime=stub_runtime(stub))
    out = by_key(local_act.apply_local(EDIT, t))
    assert out[FILE].ok and out[PROC].ok
    assert (t.generated / "prometheus.yml").read_bytes() == NEW
    assert stub.calls == 1
    assert not counter.exists()  # the running Prometheus was the check


def test_a_rejected_reload_puts_the_old_file_back_and_fails_for_good(
    tmp_path: Path, stub: ReloadStub
) -> None:
    promtool, counter = counting_promtool(tmp_path)
    stub.accept = False
    t = targets(tmp_path, stub.listen, promtool, runtime=stub_runtime(stub))
    out = by_key(local_act.apply_local(EDIT, t))
    assert not out[FILE].ok and out[FILE].permanent
    assert "rejected by the running Prometheus" in out[FILE].message
    assert "bad regexp" in out[FILE].message
    assert not out[PROC].ok
    assert (t.generated / "prometheus.yml").read_bytes() == OLD  # what Prometheus runs
    assert stub.calls == 2  # the rejected reload, then one on the old file again
    assert not counter.exists()


def test_an_unanswered_reload_puts_the_old_file_back_to_try_again(tmp_path: Path) -> None:
    promtool, _ = counting_promtool(tmp_path)
    t = targets(tmp_path, "127.0.0.1:9", promtool)  # nothing listens
    out = by_key(local_act.apply_local(EDIT, t))
    assert not out[FILE].ok and not out[FILE].permanent
    assert out[FILE].retry_after is not None
    assert "not loaded by the running Prometheus" in out[FILE].message
    assert (t.generated / "prometheus.yml").read_bytes() == OLD


@pytest.mark.parametrize("action", [Action.RESTART, Action.CREATE])
def test_promtool_still_checks_what_prometheus_will_start_on(
    tmp_path: Path, stub: ReloadStub, action: Action
) -> None:
    promtool, counter = counting_promtool(tmp_path)
    t = targets(tmp_path, stub.listen, promtool, runtime=stub_runtime(stub))
    out = by_key(local_act.apply_local([Change(FILE, Action.UPDATE), Change(PROC, action)], t))
    assert not out[FILE].ok and "rejected by promtool" in out[FILE].message
    assert counter.read_text().count("x") == 1
    assert (t.generated / "prometheus.yml").read_bytes() == OLD  # never swapped in
    assert stub.calls == 0


def running_interval(prom: Prometheus) -> str:
    """The scrape interval of the configuration the Prometheus process runs."""
    config = yaml.safe_load(prom.api("status/config")["yaml"])
    interval: str = config["global"]["scrape_interval"]
    return interval


def test_the_signal_waits_for_the_next_whole_second(stub: ReloadStub) -> None:
    """A timestamp in whole seconds would not move for a reload in the same second."""
    signalled: list[float] = []

    def hup() -> None:
        signalled.append(time.time())
        stub.hup()

    before = stub.success_time
    promreload.confirm_reload(stub.listen, hup)
    assert len(signalled) == 1
    assert int(signalled[0]) > before


def test_a_refusal_after_a_failed_reload_is_read_from_the_log(stub: ReloadStub) -> None:
    """The gauge is 0 already, so only the process' own log line tells a new refusal."""
    stub.successful = 0
    stub.accept = False
    with pytest.raises(PermanentError, match="bad regexp"):
        promreload.confirm_reload(stub.listen, stub.hup, lambda: stub.log)


def test_no_verdict_is_temporary_and_bounded(stub: ReloadStub) -> None:
    t0 = time.monotonic()
    with pytest.raises(TemporaryError, match="did not confirm"):
        promreload.confirm_reload(stub.listen, lambda: None, timeout=0.3)
    assert time.monotonic() - t0 < 1.0 + 1.5  # the whole-second wait, then the bound


def real_runtime(prom: Prometheus) -> SignalRuntime:
    """What the supervisor does: SIGHUP to the process, its stderr as last lines."""
    assert prom.process is not None
    pid = prom.process.pid
    return SignalRuntime(lambda: os.kill(pid, signal.SIGHUP), lambda: prom.logs().splitlines())


@pytest.mark.prometheus
def test_each_prometheus_version_is_the_check_it_stands_for(
    tmp_path: Path, prometheus_bin: PromBin
) -> None:
    """The stub's answers, from the real binary of each supported release: a file it
    refuses is a 500 and it keeps running the old one; a good one is a 200 and runs."""
    generated = tmp_path / "generated"
    binary = str(prometheus_bin.binary)
    with Prometheus(OLD.decode(), mode="agent", binary=binary, workdir=generated) as prom:
        promtool, counter = counting_promtool(tmp_path)
        listen = f"127.0.0.1:{prom.port}"

        runtime = real_runtime(prom)
        edit = targets(tmp_path, listen, promtool, BAD, runtime)
        out = by_key(local_act.apply_local(EDIT, edit))
        assert not out[FILE].ok and out[FILE].permanent
        assert "rejected by the running Prometheus" in out[FILE].message
        assert "error parsing regexp" in out[FILE].message
        assert (generated / "prometheus.yml").read_bytes() == OLD
        assert running_interval(prom) == "15s"
        assert prom.own_metric("prometheus_config_last_reload_successful") == 1  # put back

        out = by_key(local_act.apply_local(EDIT, targets(tmp_path, listen, promtool, NEW, runtime)))
        assert out[FILE].ok and out[PROC].ok
        assert running_interval(prom) == "30s"
        assert not counter.exists()
        assert promconfig.config_condition(listen).status is ConditionStatus.TRUE  # type: ignore[union-attr]


@pytest.mark.prometheus
def test_a_hand_sent_sighup_with_a_bad_file_is_seen_by_the_next_read(
    tmp_path: Path, prometheus_bin: PromBin
) -> None:
    """No reload of ampd's: an operator edits the file and signals Prometheus himself."""
    binary = str(prometheus_bin.binary)
    with Prometheus(OLD.decode(), mode="agent", binary=binary, workdir=tmp_path) as prom:
        listen = f"127.0.0.1:{prom.port}"
        assert prom.process is not None
        before = promconfig.config_condition(listen)
        assert before is not None and before.status is ConditionStatus.TRUE
        prom.config_path.write_bytes(BAD)
        os.kill(prom.process.pid, signal.SIGHUP)
        cond = wait_for(
            lambda: promconfig.config_condition(listen),
            10,
            0.02,
            "the refused reload seen",
            until=lambda c: c is None or c.status is not ConditionStatus.TRUE,
            retry_on=(),
        )
        assert cond is not None and cond.status is ConditionStatus.FALSE
        assert cond.reason == "ReloadFailed"
        assert running_interval(prom) == "15s"  # still runs what it had
