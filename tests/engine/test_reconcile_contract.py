"""The reconcile contract: closed actions, one retry book, a pass that never dies, and
``render`` equal to what the daemon writes."""

from __future__ import annotations

import asyncio
import json
import random
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from ampd.aws.act import writes as aws_act
from ampd.core import (
    Action,
    Change,
    Command,
    ConditionStatus,
    Kind,
    ResourceKey,
    SideResult,
)
from ampd.daemon.loop import Daemon
from ampd.engine.retry import RetryBook
from ampd.engine.status import overall
from ampd.errors import PermanentError
from ampd.gateways.files import FileWriter
from ampd.gateways.paths import Paths
from ampd.gateways.store import Store, StoreView
from ampd.local.act import apply as local_act
from ampd.logs import journal_fields
from ampd.source.local import FileSource
from ampd.wiring import reconciler
from tests.harness.aws_emulator import AwsEmulator
from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_aws import AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.wait import wait_for
from tests.local.passes import FlakyRuntime


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_gateway_raising_runtimeerror_degrades_then_recovers(tmp_path: Path) -> None:
    state = write(
        tmp_path / "state.yml",
        {
            "version": 1,
            "prometheus": {"listen": f"127.0.0.1:{free_port()}"},
            "metrics": {"enabled": False},
        },
    )
    runtime = FlakyRuntime()
    rec = reconciler(state, Paths(tmp_path / "lib", tmp_path / "run"), runtime)
    broken = rec.run_pass()
    cond = broken.conditions["LocalSideHealthy"]
    assert cond.status is ConditionStatus.FALSE and "observe exploded" in cond.message
    assert overall(broken)[1].value == "Degraded"
    assert broken.next_pass_at is not None  # a backoff, not a dead loop
    runtime.broken = False
    fixed = rec.run_pass()
    assert fixed.conditions["LocalSideHealthy"].status is ConditionStatus.TRUE
    assert runtime.started == ["prometheus"]
    rec.close()


def test_the_daemon_loop_survives_a_pass_that_raises(tmp_path: Path) -> None:
    class Exploding:
        book = RetryBook()

        def run_pass(self) -> Any:
            raise RuntimeError("a bug in the pass")

    daemon = Daemon(FileSource(tmp_path / "state.yml"), Paths(tmp_path / "lib", tmp_path / "run"))

    async def go() -> None:
        await daemon._one_pass(Exploding(), None, ["test"])  # type: ignore[arg-type]

    asyncio.run(go())
    assert daemon.next_pass_at is not None  # backed off and will try again
    assert daemon.passes == 0


def make_fake_prometheus(bin_dir: Path, counter: Path) -> Path:
    """A Prometheus 2.42 whose promtool rejects every config (and counts the checks)."""
    bin_dir.mkdir(parents=True)
    prom = bin_dir / "prometheus"
    prom.write_text('#!/bin/sh\necho "prometheus, version 2.42.0 (branch: debian)"\n')
    tool = bin_dir / "promtool"
    tool.write_text(f'#!/bin/sh\necho x >> "{counter}"\necho "FAILED: bad config" >&2\nexit 1\n')
    for p in (prom, tool):
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return prom


def test_a_promtool_rejection_is_not_retried_until_the_spec_changes(tmp_path: Path) -> None:
    counter = tmp_path / "checks"
    prom = make_fake_prometheus(trusted_dir() / "bin", counter)
    spec: dict[str, Any] = {
        "version": 1,
        "prometheus": {"binary": str(prom), "scrape_interval": "15s"},
        "metrics": {"enabled": False},
    }
    state = write(tmp_path / "state.yml", spec)
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    rec = reconciler(state, paths, FlakyRuntime(), manage_processes=False)

    def prom_yml_outcome() -> str:
        summary = rec.run_pass()
        [o] = [
            o for o in summary.outcomes if o.change.key == ResourceKey(Kind.FILE, "prometheus.yml")
        ]
        assert not o.ok
        return o.message

    assert "rejected by promtool" in prom_yml_outcome()
    assert "not retried until its inputs change" in prom_yml_outcome()
    assert "not retried until its inputs change" in prom_yml_outcome()
    assert counter.read_text().count("x") == 1  # checked once, not once per pass
    spec["prometheus"]["scrape_interval"] = "30s"
    write(state, spec)
    assert "rejected by promtool" in prom_yml_outcome()
    assert counter.read_text().count("x") == 2
    assert not (paths.generated / "prometheus.yml").exists()  # never swapped in
    rec.close()


def test_executors_refuse_pairs_outside_their_kind(tmp_path: Path) -> None:
    targets = local_act.LocalTargets({}, tmp_path, FlakyRuntime(), {}, {}, None, FileWriter())
    with pytest.raises(PermanentError, match="does not apply"):
        local_act.apply_change(
            Change(ResourceKey(Kind.PROCESS, "prometheus"), Action.UPDATE), targets
        )
    with pytest.raises(PermanentError, match="not a local resource"):
        local_act.apply_change(Change(ResourceKey(Kind.RULE_GROUP, "x"), Action.CREATE), targets)
    target = aws_act.Target("ws-1", "arn:aws:aps:eu-west-1:1:workspace/ws-1", "s")
    no_gateway: Any = None  # neither call may reach the gateway
    with pytest.raises(PermanentError, match="not an AWS resource"):
        aws_act.apply_change(no_gateway, Change(ResourceKey(Kind.FILE, "x"), Action.CREATE), target)
    with pytest.raises(PermanentError, match="does not apply"):
        restart = Change(ResourceKey(Kind.RULE_GROUP, "x"), Action.RESTART)
        aws_act.apply_change(no_gateway, restart, target)


def test_a_local_failure_outcome_is_reported_not_raised(tmp_path: Path) -> None:
    class Boom(FlakyRuntime):
        def start(self, command: Command) -> None:
            raise RuntimeError("start exploded")

    targets = local_act.LocalTargets(
        {}, tmp_path, Boom(), {"prometheus": Command("prometheus", ("x",))}, {}, None, FileWriter()
    )
    [o] = local_act.apply_local(
        [Change(ResourceKey(Kind.PROCESS, "prometheus"), Action.CREATE)], targets
    )
    assert not o.ok and "start exploded" in o.message and o.retry_after is not None


def test_retry_book_backs_off_and_remembers_permanent_failures_by_fingerprint() -> None:
    book = RetryBook(random.Random(1), cap=40)
    key = ResourceKey(Kind.FILE, "prometheus.yml")
    delays = [book.failed_temporarily(key, 5) for _ in range(6)]
    assert all(0 < d <= 40 for d in delays)
    assert delays[3] > delays[0]  # grows with the failures in a row
    book.failed_permanently(key, "sha-a", "rejected")
    assert book.blocked(key, "sha-a") == "rejected"
    assert book.blocked(key, "sha-b") is None  # new inputs: try again
    book.succeeded(key)
    assert book.blocked(key, "sha-a") is None and book.failures(key) == 0


def test_plan_store_view_has_no_writers(tmp_path: Path) -> None:
    view = StoreView(tmp_path / "ampd.json")
    assert not hasattr(view, "update") and not hasattr(view, "save")
    assert hasattr(Store(tmp_path / "x.json"), "update")
    rec = reconciler(
        write(tmp_path / "s.yml", {"version": 1, "metrics": {"enabled": False}}),
        Paths(tmp_path / "lib", tmp_path / "run"),
        FlakyRuntime(),
        writes=False,
    )
    assert rec.writers is None  # a plan holds no Writers: nothing it can write with
    assert type(rec.finder._store) is StoreView
    rec.run_pass()
    assert not (tmp_path / "lib").exists()  # no state directory, no lock, no ampd.json
    rec.close()


def test_prometheus_only_state_file_is_valid_and_writes_nowhere(tmp_path: Path) -> None:
    p = AmpdProcess(tmp_path)
    p.write_state(
        {
            "version": 1,
            "prometheus": {"scrape_configs": [{"job": "app", "targets": ["127.0.0.1:8080"]}]},
        }
    )
    res = p.ampd("validate")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    rendered = p.ampd("render", "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    assert "remote_write" not in config
    assert {j["job_name"] for j in config["scrape_configs"]} >= {"app"}


@pytest.mark.parametrize(
    ("level", "priority"), [("debug", "7"), ("info", "6"), ("warning", "4"), ("error", "3")]
)
def test_journal_fields(level: str, priority: str) -> None:
    fields = journal_fields(
        {
            "event": "drift.detected",
            "level": level,
            "timestamp": "2026-01-01T00:00:00Z",
            "reconcile_id": "abc123",
            "key": "file/prometheus.yml",
            "fields": ["sha256"],
            "corrected": True,
        }
    )
    assert fields["PRIORITY"] == priority
    assert fields["AMPD_EVENT"] == "drift.detected"
    assert fields["RECONCILE_ID"] == "abc123"
    assert fields["RESOURCE"] == "file/prometheus.yml"
    assert fields["AMPD_FIELDS"] == '["sha256"]'
    assert fields["AMPD_CORRECTED"] == "true"
    assert fields["MESSAGE"].startswith("drift.detected key=file/prometheus.yml")
    assert "abc123" not in fields["MESSAGE"]  # short and for people


def test_render_equals_what_the_daemon_writes_for_a_pinned_workspace(
    tmp_path: Path, aws_emulator_env: AwsEnv, aws_emulator: AwsEmulator
) -> None:
    ws_id = aws_emulator.client("amp").create_workspace(alias="pinned")["workspaceId"]
    p = AmpdProcess(tmp_path)
    p.write_state(
        {
            "version": 1,
            "stack": "pin",
            "aws": {"region": "eu-west-1", "data_plane_url": "http://127.0.0.1:9"},
            "workspace": {"id": ws_id},
            "prometheus": {
                "listen": f"127.0.0.1:{free_port()}",
                "instance_labels": ["instance_id", "instance_type"],
                # the proxy's file too, on either release (auto: 2.53 signs by itself)
                "remote_write": {"signing": "proxy"},
            },
            "proxy": {"listen": f"127.0.0.1:{free_port()}"},
            "grafana": {"enabled": True, "binary": str(trusted_dir() / "no-grafana")},
            "metrics": {"enabled": False},
            "runtime": "supervisor",
        }
    )
    out = tmp_path / "rendered"
    res = p.ampd("render", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert not p.state_dir.joinpath("ampd.json").exists()  # render wrote only --out
    applied = p.ampd("apply", "--once")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    gen = p.state_dir / "generated"
    rendered = {str(f.relative_to(out)): f.read_bytes() for f in out.rglob("*") if f.is_file()}
    written = {str(f.relative_to(gen)): f.read_bytes() for f in gen.rglob("*") if f.is_file()}
    assert rendered == written
    config = yaml.safe_load(rendered["prometheus.yml"])
    assert config["remote_write"], "the pinned workspace's URL is known without AWS"
    assert json.loads(rendered["proxy.json"])["workspace_id"] == ws_id
    assert b"pending" not in rendered["grafana/provisioning/datasources/ampd.yaml"]
    assert config["global"]["external_labels"]["instance_id"] == "i-0123456789abcdef0"


def test_render_says_what_it_cannot_know(tmp_path: Path, aws_emulator_env: AwsEnv) -> None:
    p = AmpdProcess(tmp_path)
    p.write_state(
        {
            "version": 1,
            "aws": {"region": "eu-west-1"},
            "workspace": {"alias": "not-yet"},
            "metrics": {"enabled": False},
            "prometheus": {},
        }
    )
    res = p.ampd("render", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert "'not-yet' has not been resolved yet" in res.stderr
    config = yaml.safe_load((tmp_path / "out" / "prometheus.yml").read_text())
    assert "remote_write" not in config  # nothing fake
    assert not (p.state_dir / "ampd.json").exists()


@pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus")
def test_one_pass_per_edit_ampd_own_writes_queue_none(tmp_path: Path) -> None:
    p = AmpdProcess(tmp_path)
    state: dict[str, Any] = {
        "version": 1,
        "prometheus": {"listen": f"127.0.0.1:{free_port()}", "scrape_interval": "1s"},
        "metrics": {"enabled": False},
        "runtime": "supervisor",
    }
    p.write_state(state)
    p.start()
    try:
        p.wait_healthy(60)
        mark = p.log_mark()
        state["prometheus"]["scrape_configs"] = [{"job": "extra", "targets": ["127.0.0.1:9"]}]
        p.write_state(state)
        p.wait_applied(mark, ("file/prometheus.yml", "update"), timeout=30)

        def summaries() -> list[dict[str, Any]]:
            return [e for e in p.logs()[mark:] if e.get("event") == "reconcile.summary"]

        # a fence: the next timer pass (at most 30 s later) comes after any event the
        # watcher could have delivered for ampd's own write into generated/
        wait_for(
            lambda: any("timer" in s["triggers"] for s in summaries()),
            70,
            what="a timer pass after the edit",
        )
        triggers = [t for s in summaries() for t in s["triggers"]]
        assert not [t for t in triggers if "/generated/" in t], triggers
        by_edit = [s for s in summaries() if any(str(p.state_file) in t for t in s["triggers"])]
        assert len(by_edit) == 1, summaries()
    finally:
        assert p.stop() == 0


def test_aws_side_log_lines_carry_the_pass_reconcile_id(tmp_path: Path) -> None:
    class LoggingAws:
        name = "aws"

        def observe(self, spec: Any, facts: Any) -> None:
            structlog.get_logger().info("aws.side.says.hello")

        def plan(self, spec: Any, facts: Any, seen: None) -> None:
            return None

        def apply(self, plan: None, seen: None, writers: Any) -> None:
            raise AssertionError("a plan applies nothing")

        def report(self, spec: Any, facts: Any, seen: None, plan: None, done: None) -> Any:
            return SideResult()

    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        state = write(
            tmp_path / "state.yml",
            {"version": 1, "workspace": {"alias": "a"}, "metrics": {"enabled": False}},
        )
        rec = reconciler(
            state,
            Paths(tmp_path / "lib", tmp_path / "run"),
            FlakyRuntime(),
            writes=False,
            aws=LoggingAws(),  # type: ignore[arg-type]
        )
        summary = rec.run_pass()
        rec.close()
    finally:
        structlog.reset_defaults()
    [hello] = [e for e in capture.entries if e["event"] == "aws.side.says.hello"]
    assert hello["reconcile_id"] == summary.reconcile_id  # logged from the worker thread
