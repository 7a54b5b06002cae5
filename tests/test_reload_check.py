"""A running Prometheus is the check of a prometheus.yml it only reloads (act/local.py):
promtool is not run on that path; a reload that fails puts the previous file back."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ampd.act import local as local_act
from ampd.core import Action, Change, Command, Kind, Outcome, ResourceKey
from ampd.render.files import Rendered
from tests.harness.prom import Prometheus
from tests.harness.prombins import PromBin
from tests.test_reconcile_contract import FlakyRuntime

OLD = b"global:\n  scrape_interval: 15s\n"
NEW = b"global:\n  scrape_interval: 30s\n"
# valid YAML that Prometheus refuses to load (the regexp does not compile)
BAD = NEW + b'scrape_configs:\n  - job_name: a\n    relabel_configs: [{regex: "("}]\n'
FILE = ResourceKey(Kind.FILE, "prometheus.yml")
PROC = ResourceKey(Kind.PROCESS, "prometheus")


class ReloadStub:
    """Answers POST /-/reload with ``status`` and counts the calls."""

    def __init__(self) -> None:
        self.status = 200
        self.calls = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                stub.calls += 1
                body = b"" if stub.status == 200 else b"failed to reload config: bad regexp\n"
                self.send_response(stub.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stub() -> Iterator[ReloadStub]:
    s = ReloadStub()
    s.thread.start()
    try:
        yield s
    finally:
        s.server.shutdown()
        s.server.server_close()


def counting_promtool(tmp_path: Path) -> tuple[str, Path]:
    counter = tmp_path / "promtool-calls"
    tool = tmp_path / "promtool"
    tool.write_text(f'#!/bin/sh\necho x >> "{counter}"\necho "FAILED: rejected" >&2\nexit 1\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(tool), counter


def targets(tmp_path: Path, listen: str, promtool: str, new: bytes = NEW) -> local_act.LocalTargets:
    generated = tmp_path / "generated"
    generated.mkdir(exist_ok=True)
    (generated / "prometheus.yml").write_bytes(OLD)
    runtime: Any = FlakyRuntime()
    cmd = Command("prometheus", ("prometheus",))
    return local_act.LocalTargets(
        {"prometheus.yml": Rendered("prometheus.yml", new)},
        generated,
        runtime,
        {"prometheus": cmd},
        {"prometheus": listen},
        promtool,
    )


def by_key(outcomes: list[Outcome]) -> dict[ResourceKey, Outcome]:
    return {o.change.key: o for o in outcomes}


EDIT = [Change(FILE, Action.UPDATE), Change(PROC, Action.RELOAD)]


def test_an_accepted_reload_keeps_the_new_file_and_runs_no_promtool(
    tmp_path: Path, stub: ReloadStub
) -> None:
    promtool, counter = counting_promtool(tmp_path)
    t = targets(tmp_path, stub.listen, promtool)
    out = by_key(local_act.apply_local(EDIT, t))
    assert out[FILE].ok and out[PROC].ok
    assert (t.generated / "prometheus.yml").read_bytes() == NEW
    assert stub.calls == 1
    assert not counter.exists()  # the running Prometheus was the check


def test_a_rejected_reload_puts_the_old_file_back_and_fails_for_good(
    tmp_path: Path, stub: ReloadStub
) -> None:
    promtool, counter = counting_promtool(tmp_path)
    stub.status = 500
    t = targets(tmp_path, stub.listen, promtool)
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
    t = targets(tmp_path, stub.listen, promtool)
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

        out = by_key(local_act.apply_local(EDIT, targets(tmp_path, listen, promtool, BAD)))
        assert not out[FILE].ok and out[FILE].permanent
        assert "rejected by the running Prometheus" in out[FILE].message
        assert "error parsing regexp" in out[FILE].message
        assert (generated / "prometheus.yml").read_bytes() == OLD
        assert running_interval(prom) == "15s"
        assert prom.own_metric("prometheus_config_last_reload_successful") == 1  # put back

        out = by_key(local_act.apply_local(EDIT, targets(tmp_path, listen, promtool)))
        assert out[FILE].ok and out[PROC].ok
        assert running_interval(prom) == "30s"
        assert not counter.exists()
