"""ampd.gateways.promqueue against a real Prometheus in agent mode (each supported version:
Debian 12's 2.42, Debian 13's 2.53) whose remote-write target is down, then up; and the
queue-rebuild rule it exists for, on the real binaries: a scrape-only reload keeps the
queue, an external-labels change rebuilds it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from ampd.core import Action
from ampd.gateways.http import HttpResult
from ampd.gateways.promqueue import (
    Drained,
    parse,
    read_queues,
    wait_drained,
)
from ampd.local.plan.drain import REBUILT, RESTART, drain_reason
from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.files import queue_fingerprint, render_prometheus
from ampd.spec.load import load_spec
from tests.harness.aio import free_port
from tests.harness.clock import FakeClock
from tests.harness.prom import Prometheus, PrometheusError
from tests.harness.prombins import PromBin
from tests.harness.wait import wait_for

pytestmark = pytest.mark.prometheus

# Lines as Prometheus 2.42 prints them (agent mode, target down)
URL = "http://127.0.0.1:9/api/v1/write"
METRICS_242 = f"""\
# TYPE prometheus_remote_storage_highest_timestamp_in_seconds gauge
prometheus_remote_storage_highest_timestamp_in_seconds 1.796099694e+09
prometheus_remote_storage_samples_in_total 204
prometheus_remote_storage_samples_pending{{remote_name="amp",url="{URL}"}} 204
prometheus_remote_storage_samples_total{{remote_name="amp",url="{URL}"}} 0
prometheus_remote_storage_samples_failed_total{{remote_name="amp",url="{URL}"}} 3
prometheus_remote_storage_samples_retried_total{{remote_name="amp",url="{URL}"}} 408
prometheus_remote_storage_samples_dropped_total{{remote_name="amp",url="{URL}"}} 0
prometheus_remote_storage_shards{{remote_name="amp",url="{URL}"}} 1
prometheus_remote_storage_sent_batch_duration_seconds_sum{{remote_name="amp",url="{URL}"}} 0
prometheus_agent_active_series 204
"""


def test_parse_242_names() -> None:
    snap = parse(METRICS_242)
    assert snap.highest_appended == pytest.approx(1.796099694e9)
    assert snap.samples_in == 204
    amp = snap.queue("amp")
    assert amp is not None
    assert (amp.url, amp.pending, amp.shards, amp.sent) == (URL, 204, 1, 0)
    assert (amp.failed, amp.retried, amp.dropped, amp.highest_sent) == (3, 408, 0, None)
    assert snap.pending == 204
    assert parse("").queues == ()


def _fake(pages: list[str]) -> Any:
    def fetch(url: str) -> HttpResult:
        return HttpResult(200, pages.pop(0) if len(pages) > 1 else pages[0])

    return fetch


def test_wait_is_bounded_by_the_timeout() -> None:
    clock = FakeClock()
    res = wait_drained(
        "127.0.0.1:1",
        2.0,
        poll=0.5,
        fetch=_fake([METRICS_242]),
        clock=clock,
        sleep=clock.sleep,
    )
    assert res == Drained(False, 2.0, 204)


def test_sent_past_the_mark_is_drained_even_with_new_samples_pending() -> None:
    later = METRICS_242.replace("} 204\n", "} 17\n") + (
        f'prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{remote_name="amp",'
        f'url="{URL}"}} 1.796099695e+09\n'
    )
    clock = FakeClock()
    res = wait_drained(
        "127.0.0.1:1",
        10.0,
        fetch=_fake([METRICS_242, later]),
        clock=clock,
        sleep=clock.sleep,
    )
    assert res.drained
    assert res.pending_at_end == 17  # appended after the wait began: not waited for


def test_drain_only_when_the_reload_rebuilds_the_queue() -> None:
    base = b"global:\n  external_labels:\n    a: 1\nremote_write:\n  - url: x\n"
    jobs = base + b"scrape_configs:\n  - job_name: b\n"
    labels = base.replace(b"a: 1", b"a: 2")
    reload, restart = [Action.RELOAD], [Action.RESTART]
    assert drain_reason(reload, base, jobs) is None  # scrape jobs leave the queue alone
    assert drain_reason(reload, None, base) is None  # nothing running
    assert drain_reason(reload, base, labels) == REBUILT
    assert drain_reason([], base, labels) is None  # no reload planned
    assert drain_reason(reload, base, None) is None
    for ends in (restart, [Action.DELETE], [Action.REPLACE]):
        assert drain_reason(ends, base, base) == RESTART
    drained = METRICS_242.replace("} 204\n", "} 0\n")
    res = wait_drained("127.0.0.1:1", 5.0, fetch=_fake([drained]))
    assert res.drained and res.pending_at_end == 0


def test_nothing_listening_is_nothing_to_drain() -> None:
    res = wait_drained(f"127.0.0.1:{free_port()}", 5.0)
    assert res == Drained(False, 0.0, None)


def _agent_config(listen: str, target: str) -> str:
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [listen]}]}
            ],
            "remote_write": [
                {
                    "name": "amp",
                    "url": f"http://{target}/api/v1/write",
                    "queue_config": {"max_samples_per_send": 500, "retry_on_http_429": True},
                }
            ],
        }
    )


@pytest.fixture
def agent_down(prometheus_bin: PromBin) -> Iterator[tuple[Prometheus, int]]:
    """An agent-mode Prometheus writing to a port where nothing listens yet."""
    port, target = free_port(), free_port()
    config = _agent_config(f"127.0.0.1:{port}", f"127.0.0.1:{target}")
    binary = str(prometheus_bin.binary)
    with Prometheus(config, mode="agent", port=port, binary=binary) as agent:
        yield agent, target


def listen_of(p: Prometheus) -> str:
    return f"127.0.0.1:{p.port}"


def test_down_then_up(agent_down: tuple[Prometheus, int]) -> None:
    agent, target = agent_down
    listen = listen_of(agent)
    wait_for(lambda: (s := read_queues(listen)) and s.pending > 0, 60, what="samples pending")

    held = wait_drained(listen, 1.0)
    assert not held.drained
    assert 1.0 <= held.waited_s < 10.0  # bounded: the timeout plus one slow read
    assert held.pending_at_end is not None and held.pending_at_end > 0
    snap = read_queues(listen)
    assert snap is not None
    amp = snap.queue("amp")
    assert amp is not None and amp.shards >= 1
    wait_for(lambda: (q := read_queues(listen)) and q.queues[0].retried > 0, what="retries counted")

    with Prometheus(mode="server", remote_write_receiver=True, port=target) as receiver:
        done = wait_drained(listen, 60.0)
        assert done.drained, done
        assert done.waited_s < 60.0
        after = read_queues(listen)
        assert after is not None and after.queues[0].sent > 0
        assert after.queues[0].failed == 0
        assert receiver.query('up{job="prometheus"}')
        agent.stop()  # while the receiver is up: a clean, quick shutdown


def rendered(listen: str, target: str, **prom: Any) -> bytes:
    data = {
        "version": 1,
        "workspace": {"id": "ws-1"},
        "proxy": {"listen": target},
        "prometheus": {
            "listen": listen,
            "scrape_interval": "1s",
            "remote_write": {"signing": "proxy"},
            **prom,
        },
        "metrics": {"scrape": False},
    }
    spec = load_spec(yaml.safe_dump(data), "/etc/ampd/state.yml").spec
    facts = WorkspaceFacts(
        id="ws-1",
        region="eu-west-1",
        remote_write_url=f"http://{target}/workspaces/ws-1/api/v1/remote_write",
        query_url=f"http://{target}/workspaces/ws-1/api/v1/query",
    )
    ctx = RenderContext(source="/etc/ampd/state.yml", state_dir="/tmp", workspace=facts)
    return render_prometheus(spec, ctx)


def stops(p: Prometheus) -> int:
    return p.logs().count("Stopping remote storage...")


def test_scrape_only_reload_keeps_the_queue_label_change_rebuilds_it(
    prometheus_bin: PromBin,
) -> None:
    port, target = free_port(), free_port()
    listen, upstream = f"127.0.0.1:{port}", f"127.0.0.1:{target}"
    labels = {"external_labels": {"cluster": "a"}}
    first = rendered(listen, upstream, **labels)
    jobs_edit = rendered(
        listen, upstream, scrape_configs=[{"job": "app", "targets": ["127.0.0.1:1"]}], **labels
    )
    label_edit = rendered(listen, upstream, external_labels={"cluster": "b"})
    assert queue_fingerprint(first) == queue_fingerprint(jobs_edit)
    assert queue_fingerprint(first) != queue_fingerprint(label_edit)

    binary = str(prometheus_bin.binary)
    with Prometheus(first.decode(), mode="agent", port=port, binary=binary) as agent:
        wait_for(lambda: (s := read_queues(listen)) and s.pending > 0, 60, what="samples pending")
        before = read_queues(listen)
        assert before is not None
        agent.config_path.write_bytes(jobs_edit)
        agent.reload()
        kept = read_queues(listen)
        assert kept is not None
        assert stops(agent) == 0
        assert kept.queues[0].pending >= before.queues[0].pending  # still held, not dropped
        assert kept.queues[0].retried >= before.queues[0].retried  # same counters: same queue

        # With the upstream down the old queue cannot flush: Prometheus holds the reload
        # for up to its flush deadline (1 min), then drops what the queue held.
        agent.config_path.write_bytes(label_edit)
        threading.Thread(target=_reload_quietly, args=(agent,), daemon=True).start()
        wait_for(lambda: stops(agent) == 1, what="the queue rebuilt")
        assert agent.process is not None
        agent.process.kill()  # a clean stop would wait out the same flush deadline


def _reload_quietly(p: Prometheus) -> None:
    with contextlib.suppress(OSError, PrometheusError):  # it is killed meanwhile
        p.reload()
