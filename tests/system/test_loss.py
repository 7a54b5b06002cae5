"""A throttled workspace loses nothing: the prometheus.yml ampd renders (agent mode,
remote write through the signing proxy) rides out a window of HTTP 429 with Retry-After
and every scrape reaches the SigV4-verifying data plane's receiver. The same config with
``retry_on_http_429: false`` beside it, in the same window, loses samples -- so the count
is known to see a loss when there is one."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest
import yaml

from ampd.gateways.promqueue import wait_drained
from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.files import render_prometheus
from ampd.spec.load import load_spec
from tests.harness.aio import free_port
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_dataplane import REGION, WORKSPACE_ID, StartProxy
from tests.harness.loss import Phase, failed_scrapes, received_values, runs
from tests.harness.prom import Prometheus, prometheus_available
from tests.harness.sample_app import SampleApp
from tests.harness.wait import wait_for

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(not prometheus_available(), reason="needs /usr/bin/prometheus"),
]

THROTTLED_S = 10.0


@dataclass
class Writer:
    """One agent-mode Prometheus scraping its own counter app every second."""

    variant: str
    app: SampleApp
    agent: Prometheus

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.agent.port}"


def agent_config(app: SampleApp, proxy_listen: str, run: str, variant: str) -> tuple[str, int]:
    """prometheus.yml as ampd renders it for this app, and the port it listens on."""
    port = free_port()
    state = {
        "version": 1,
        "workspace": {"id": WORKSPACE_ID},
        "proxy": {"listen": proxy_listen},
        "prometheus": {
            "listen": f"127.0.0.1:{port}",
            "scrape_interval": "1s",
            "external_labels": {"loss_run": run, "variant": variant},
            "scrape_configs": [{"job": "app", "targets": [app.target], "interval": "1s"}],
            "remote_write": {
                "signing": "proxy",
                "queue": {"capacity": 10000, "max_samples_per_send": 500},
            },
        },
        "metrics": {"scrape": False},
    }
    spec = load_spec(yaml.safe_dump(state), "/etc/ampd/state.yml").spec
    facts = WorkspaceFacts(
        id=WORKSPACE_ID,
        region=REGION,
        remote_write_url=f"http://x/workspaces/{WORKSPACE_ID}/api/v1/remote_write",
        query_url=f"http://x/workspaces/{WORKSPACE_ID}/api/v1/query",
    )
    text = render_prometheus(spec, RenderContext("/etc/ampd/state.yml", "/tmp", facts)).decode()
    assert "retry_on_http_429: true" in text
    if variant == "no-retry":
        text = text.replace("retry_on_http_429: true", "retry_on_http_429: false")
    return text, port


@pytest.fixture
def writers(
    aws_env: str, dataplane: DataPlane, start_proxy: StartProxy
) -> Iterator[tuple[str, list[Writer]]]:
    proxy = start_proxy(dataplane.url)
    proxy_listen = proxy.url.removeprefix("http://")
    run = uuid.uuid4().hex[:12]
    with contextlib.ExitStack() as stack:
        out = []
        for variant in ("retry", "no-retry"):
            app = stack.enter_context(SampleApp())
            config, port = agent_config(app, proxy_listen, run, variant)
            agent = stack.enter_context(Prometheus(config, mode="agent", port=port))
            out.append(Writer(variant, app, agent))
        yield run, out
        dataplane.healthy()


def test_429_with_retry_after_loses_nothing(
    writers: tuple[str, list[Writer]], dataplane: DataPlane, receiver_prometheus: Prometheus
) -> None:
    run, (retry, no_retry) = writers

    def values(w: Writer) -> set[int]:
        return received_values(receiver_prometheus, f'loss_run="{run}",variant="{w.variant}"', 600)

    def newest(w: Writer) -> int:
        return max(values(w), default=0)

    for w in (retry, no_retry):
        wait_for(partial(newest, w), 45, what=f"{w.variant}: samples arriving")

    starts = {w.variant: w.app.scrapes for w in (retry, no_retry)}
    wall0, t0 = time.time(), time.monotonic()
    dataplane.throttle(retry_after=1)
    wait_for(lambda: dataplane.faulted >= 2, 15, what="429s answered")
    while time.monotonic() - t0 < THROTTLED_S:  # the throttled window itself
        time.sleep(0.2)
    dataplane.healthy()
    wall1 = time.time()
    phases = {
        w.variant: Phase("429", starts[w.variant], w.app.scrapes, THROTTLED_S)
        for w in (retry, no_retry)
    }

    for w in (retry, no_retry):
        assert wait_drained(w.listen, 30.0).drained, f"{w.variant} did not drain"
        # a scrape from after the phase arrived: nothing of the phase is still on its way
        last = phases[w.variant].last
        wait_for(lambda: newest(w) > last, 30, what=f"{w.variant}: a scrape after {last}")  # noqa: B023 - called before the loop moves on

    kept, dropped = phases["retry"], phases["no-retry"]
    got_retry, got_drop = values(retry), values(no_retry)
    assert kept.expected >= THROTTLED_S / 2
    # a scrape that failed at the source (up == 0, a loaded machine) never reached the
    # queue: not a remote-write loss
    at_source = failed_scrapes(
        receiver_prometheus, f'loss_run="{run}",variant="retry"', wall0 - 1, wall1 + 1
    )
    assert kept.lost(got_retry) <= at_source, f"lost scrapes {runs(kept.missing(got_retry))}"
    # the same window without retry_on_http_429 drops what was throttled
    assert dropped.lost(got_drop) >= THROTTLED_S / 2, runs(dropped.missing(got_drop))
    print(f"429 for {THROTTLED_S:.0f} s: retry lost {kept.lost(got_retry)}/{kept.expected}, "
          f"no-retry lost {dropped.lost(got_drop)}/{dropped.expected}")  # fmt: skip
    assert dataplane.faulted >= 2
