"""Clock skew (#23): AWS refuses a signature more than 5 minutes away from its own clock
(403), and Prometheus drops a batch on any 4xx. The proxy learns the offset from the
refusal's ``Date``, re-signs once, keeps the offset, exports it, and answers 503
(retried by Prometheus) when it cannot correct. Proved against the SigV4-verifying
stand-in with its clock moved, and with a real Prometheus writing through the proxy:
0 samples lost."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from ampd.core import ConditionStatus
from ampd.gateways.promqueue import wait_drained
from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.files import render_prometheus
from ampd.local.report.proxy import proxy_conditions
from ampd.proxy.metrics import ProxyMetrics
from ampd.proxy.skew import is_skew_refusal, offset_from_date
from ampd.spec.load import load_spec
from tests.harness.aio import free_port, http_call
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_dataplane import REGION, WORKSPACE_ID, StartProxy
from tests.harness.loss import Phase, failed_scrapes, received_values, runs
from tests.harness.prom import Prometheus, prometheus_available
from tests.harness.proxy import ThreadedProxy
from tests.harness.sample_app import SampleApp
from tests.harness.wait import wait_for

WRITE_PATH = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"
OFFSET = "ampd_proxy_clock_offset_seconds"


def _write(proxy: ThreadedProxy) -> tuple[int, bytes]:
    reply = http_call(
        "POST",
        proxy.url + WRITE_PATH,
        body=b"\x00" * 32,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
    )
    return reply.status, reply.body


@pytest.mark.parametrize(
    ("ahead", "reason"), [(400.0, "expired"), (-400.0, "not_yet_valid")], ids=["ahead", "behind"]
)
def test_skew_is_corrected_once_and_kept(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy, ahead: float, reason: str
) -> None:
    bare_dataplane.clock_offset = ahead
    proxy = start_proxy(bare_dataplane.url)
    assert _write(proxy)[0] == 200
    # one refusal (AWS's own words), then the same request re-signed and accepted
    assert dict(bare_dataplane.rejected) == {reason: 1}
    assert bare_dataplane.accepted == 1
    offset = proxy.metric(OFFSET)
    assert abs(offset - ahead) <= 2.0  # Date has whole seconds
    assert proxy.metric("ampd_proxy_clock_corrections_total") == 1
    # kept: later requests are signed at AWS's time straight away
    for _ in range(3):
        assert _write(proxy)[0] == 200
    assert dict(bare_dataplane.rejected) == {reason: 1}
    health = http_call("GET", proxy.url + "/healthz").json()
    assert abs(health["clock_offset_seconds"] - ahead) <= 2.0
    text = http_call("GET", proxy.url + "/metrics").body.decode()
    assert f"{OFFSET} {offset}" in text


def test_without_a_usable_date_the_answer_is_503(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    """Nothing to correct from: 503 (Prometheus retries), never the 403 (it drops)."""
    bare_dataplane.clock_offset = 400.0
    bare_dataplane.date_override = ""
    proxy = start_proxy(bare_dataplane.url)
    status, body = _write(proxy)
    assert status == 503
    assert b"clock skew" in body and b"no Date header" in body
    assert proxy.metric("ampd_proxy_clock_uncorrected_total") == 1
    assert proxy.metric(OFFSET) == 0.0


def test_still_refused_after_re_signing_is_503(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    """A Date that is itself wrong: one re-sign, then 503 (no loop of re-signing)."""
    bare_dataplane.clock_offset = 400.0
    bare_dataplane.date_override = "Mon, 01 Jan 2024 00:00:00 GMT"
    proxy = start_proxy(bare_dataplane.url)
    status, body = _write(proxy)
    assert status == 503
    assert b"still refused" in body
    assert sum(bare_dataplane.rejected.values()) == 2  # the first try and one re-sign
    assert bare_dataplane.accepted == 0


def test_other_403s_pass_through_unchanged(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    bare_dataplane.tamper = True  # every signature is wrong: not a matter of time
    proxy = start_proxy(bare_dataplane.url)
    reply = http_call("POST", proxy.url + WRITE_PATH, body=b"x")
    assert reply.status == 403
    assert reply.headers["x-amzn-errortype"] == "InvalidSignatureException"
    assert "does not match" in reply.json()["message"]
    assert dict(bare_dataplane.rejected) == {"bad_signature": 1}  # not re-signed
    assert proxy.metric(OFFSET) == 0.0


@pytest.mark.parametrize(
    ("body", "skew"),
    [
        (b'{"message":"Signature expired: 20260101T000000Z is now earlier than ..."}', True),
        (b'{"message":"Signature not yet current: 20260101T000000Z is still later"}', True),
        (b"<Error><Code>RequestTimeTooSkewed</Code></Error>", True),
        (b'{"message":"The security token included in the request is invalid."}', False),
    ],
)
def test_skew_refusals_are_recognised(body: bytes, skew: bool) -> None:
    assert is_skew_refusal(403, body) is skew
    assert is_skew_refusal(400, body) is False


def test_offset_from_date() -> None:
    now = 1_700_000_000.0
    assert offset_from_date({"Date": "Tue, 14 Nov 2023 22:20:00 GMT"}, now) == 400.0
    assert offset_from_date({}, now) is None
    assert offset_from_date({"Date": "yesterday"}, now) is None


@pytest.mark.parametrize(("offset", "condition"), [(0.0, False), (-45.0, False), (61.0, True)])
def test_the_daemon_makes_a_large_offset_a_condition(offset: float, condition: bool) -> None:
    """From the proxy's own /metrics text, as the daemon reads it each pass."""
    registry = CollectorRegistry()
    ProxyMetrics(registry).clock_offset.set(offset)
    text = generate_latest(registry).decode()
    spec = load_spec(
        yaml.safe_dump({"version": 1, "workspace": {"id": WORKSPACE_ID}, "proxy": {}}),
        "/etc/ampd/state.yml",
    ).spec
    found = [c for c in proxy_conditions(spec, text) if c.type == "ClockInSync"]
    assert bool(found) is condition
    if found:
        assert found[0].status == ConditionStatus.FALSE
        assert "61 s behind AWS" in found[0].message


# -- a real Prometheus writing through the proxy -------------------------------------

SKEWED_S = 8.0


def _agent_config(app: SampleApp, proxy_listen: str, run: str) -> tuple[str, int]:
    """prometheus.yml as ampd renders it (agent mode, signing through the proxy)."""
    port = free_port()
    state = {
        "version": 1,
        "workspace": {"id": WORKSPACE_ID},
        "proxy": {"listen": proxy_listen},
        "prometheus": {
            "listen": f"127.0.0.1:{port}",
            "scrape_interval": "1s",
            "external_labels": {"skew_run": run},
            "scrape_configs": [{"job": "app", "targets": [app.target], "interval": "1s"}],
            "remote_write": {"signing": "proxy", "queue": {"max_samples_per_send": 500}},
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
    ctx = replace(RenderContext("/etc/ampd/state.yml", "/tmp"), workspace=facts)
    return render_prometheus(spec, ctx).decode(), port


@pytest.fixture
def skewed_writer(
    aws_env: str, dataplane: DataPlane, start_proxy: StartProxy
) -> Iterator[tuple[str, SampleApp, Prometheus, ThreadedProxy]]:
    if not prometheus_available():
        pytest.fail("needs /usr/bin/prometheus")
    dataplane.clock_offset = 400.0  # AWS is 400 s ahead before the first write
    proxy = start_proxy(dataplane.url)
    run = uuid.uuid4().hex[:12]
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(SampleApp())
        config, port = _agent_config(app, proxy.url.removeprefix("http://"), run)
        agent = stack.enter_context(Prometheus(config, mode="agent", port=port))
        yield run, app, agent, proxy
    dataplane.clock_offset = 0.0


@pytest.mark.prometheus
def test_prometheus_through_400_s_of_skew_loses_nothing(
    skewed_writer: tuple[str, SampleApp, Prometheus, ThreadedProxy],
    dataplane: DataPlane,
    receiver_prometheus: Prometheus,
) -> None:
    """AWS 400 s ahead from the first write, then 400 s behind (the host's clock was
    stepped): every scrape arrives, each jump costs one refusal per request in flight."""
    run, app, agent, proxy = skewed_writer
    selector = f'skew_run="{run}"'

    def values() -> set[int]:
        return received_values(receiver_prometheus, selector, 600)

    wall0 = time.time()
    wait_for(lambda: max(values(), default=0) >= 1, 45, what="samples arriving through the skew")
    assert abs(proxy.metric(OFFSET) - 400.0) <= 2.0
    t0 = time.monotonic()
    while time.monotonic() - t0 < SKEWED_S:
        time.sleep(0.2)
    dataplane.clock_offset = -400.0
    wait_for(lambda: proxy.metric(OFFSET) < -398.0, 30, what="the second jump corrected")
    t1 = time.monotonic()
    while time.monotonic() - t1 < SKEWED_S:
        time.sleep(0.2)
    phase = Phase("skew", 0, app.scrapes, time.monotonic() - t0)
    wall1 = time.time()

    assert wait_drained(f"127.0.0.1:{agent.port}", 30.0).drained, "the agent did not drain"
    wait_for(lambda: max(values(), default=0) > phase.last, 30, what=f"a scrape after {phase.last}")
    got = values()
    at_source = failed_scrapes(receiver_prometheus, selector, wall0 - 1, wall1 + 1)
    assert phase.expected >= 2 * SKEWED_S
    assert phase.lost(got) <= at_source, f"lost scrapes {runs(phase.missing(got))}"
    assert dataplane.rejected["expired"] >= 1 and dataplane.rejected["not_yet_valid"] >= 1
    assert proxy.metric("ampd_proxy_clock_uncorrected_total") == 0
    assert (
        proxy.metric("ampd_proxy_requests_total", {"path_kind": "remote_write", "code": "403"}) == 0
    )
    print(
        f"400 s skew, then -400 s: lost {phase.lost(got)}/{phase.expected} scrapes, "
        f"refusals {dict(dataplane.rejected)}, corrections "
        f"{proxy.metric('ampd_proxy_clock_corrections_total'):.0f}"
    )
