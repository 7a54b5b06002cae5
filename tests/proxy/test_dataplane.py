"""The verifying AMP data-plane stand-in, and metrics flowing end to end through a real
Prometheus, the signing proxy and the stand-in into a receiver Prometheus."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.harness import remote_write
from tests.harness.aio import Reply, http_call
from tests.harness.dataplane import MSG_MISMATCH, MSG_MISSING, MSG_UNKNOWN_KEY, DataPlane
from tests.harness.fixtures_dataplane import KEY_ID, REGION, SECRET, WORKSPACE_ID, StartProxy
from tests.harness.prom import Prometheus
from tests.harness.prombins import PromBin
from tests.harness.sample_app import SampleApp
from tests.harness.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
WRITE_PATH = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"


def _signed(
    dp: DataPlane,
    path: str = WRITE_PATH,
    *,
    method: str = "POST",
    body: bytes = b"body",
    key: str = KEY_ID,
    secret: str = SECRET,
    region: str = REGION,
    service: str = "aps",
    headers: dict[str, str] | None = None,
) -> tuple[str, dict[str, str], bytes]:
    """A request signed by botocore exactly as a correct client would sign it."""
    url = dp.url + path
    request = AWSRequest(
        method=method, url=url, data=body, headers=headers or {"Content-Type": "x/y"}
    )
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    return url, dict(request.headers.items()), body


def _send(method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
    return http_call(method, url, headers=headers, body=body)


def _assert_aws_error(reply: Reply, status: int, error_type: str, message: str) -> None:
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-amzn-errortype"] == error_type
    assert reply.json()["message"].startswith(message), reply.json()


# -- signature verification ---------------------------------------------------------


def test_a_correct_signature_is_accepted(bare_dataplane: DataPlane) -> None:
    url, headers, body = _signed(bare_dataplane)
    assert _send("POST", url, headers, body).status == 200
    assert bare_dataplane.accepted == 1 and bare_dataplane.accepted_key_ids == [KEY_ID]


def test_a_missing_signature_is_missing_authentication_token(bare_dataplane: DataPlane) -> None:
    reply = _send("POST", bare_dataplane.url + WRITE_PATH, {}, b"x")
    _assert_aws_error(reply, 403, "MissingAuthenticationTokenException", MSG_MISSING)
    assert reply.json() == {"message": "Missing Authentication Token"}
    assert bare_dataplane.rejected == {"missing_auth": 1}


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Bearer abc", "Unsupported Authorization Type"),
        ("AWS4-HMAC-SHA256 Credential=AKIA/x", "Authorization header requires 'SignedHeaders'"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIA, SignedHeaders=host, Signature=00",
            "Credential should be scoped with a valid terminator",
        ),
    ],
)
def test_a_malformed_signature_is_rejected(
    bare_dataplane: DataPlane, authorization: str, message: str
) -> None:
    reply = _send("POST", bare_dataplane.url + WRITE_PATH, {"Authorization": authorization}, b"")
    _assert_aws_error(reply, 403, "IncompleteSignatureException", message)
    assert bare_dataplane.rejected == {"malformed": 1}


def test_a_wrong_secret_does_not_match(bare_dataplane: DataPlane) -> None:
    url, headers, body = _signed(bare_dataplane, secret="not-the-secret")
    reply = _send("POST", url, headers, body)
    _assert_aws_error(reply, 403, "InvalidSignatureException", MSG_MISMATCH)
    assert reply.json()["message"].startswith("The request signature we calculated does not match")


@pytest.mark.parametrize("part", ["body", "path", "query", "header"])
def test_a_request_changed_after_signing_does_not_match(
    bare_dataplane: DataPlane, part: str
) -> None:
    url, headers, body = _signed(bare_dataplane, path=WRITE_PATH + "?a=1")
    if part == "body":
        body = b"BODY"
    elif part == "path":
        url = url.replace("remote_write", "remote_writ%65")
    elif part == "query":
        url = url.replace("a=1", "a=2")
    else:
        headers["Content-Type"] = "x/z"
    reply = _send("POST", url, headers, body)
    _assert_aws_error(reply, 403, "InvalidSignatureException", MSG_MISMATCH)
    assert bare_dataplane.rejected == {"bad_signature": 1}


def test_an_unknown_key_is_an_invalid_token(bare_dataplane: DataPlane) -> None:
    url, headers, body = _signed(bare_dataplane, key="AKIAUNKNOWN00000000")
    reply = _send("POST", url, headers, body)
    _assert_aws_error(reply, 403, "UnrecognizedClientException", MSG_UNKNOWN_KEY)


@pytest.mark.parametrize(
    ("skew", "reason", "message"),
    [
        (+330.0, "expired", "Signature expired: "),
        (-330.0, "not_yet_valid", "Signature not yet current: "),
    ],
)
def test_a_stale_signature_is_rejected(
    bare_dataplane: DataPlane, skew: float, reason: str, message: str
) -> None:
    # X-Amz-Date has whole seconds, so the skew keeps a margin over the 300 s limit for a
    # slow machine between signing and checking
    url, headers, body = _signed(bare_dataplane)
    bare_dataplane.clock = lambda: time.time() + skew
    reply = _send("POST", url, headers, body)
    _assert_aws_error(reply, 403, "InvalidSignatureException", message)
    assert re.search(r"\d{8}T\d{6}Z .* \(\d{8}T\d{6}Z [-+] 5 min\.\)$", reply.json()["message"])
    assert bare_dataplane.rejected == {reason: 1}
    bare_dataplane.clock = lambda: time.time() + skew / 2  # within five minutes: fine
    assert _send("POST", url, headers, body).status == 200


@pytest.mark.parametrize(
    ("region", "service", "message"),
    [
        ("us-west-2", "aps", "Credential should be scoped to a valid region, not 'us-west-2'."),
        (REGION, "execute-api", "Credential should be scoped to correct service: 'aps'."),
    ],
)
def test_a_signature_for_another_scope_is_rejected(
    bare_dataplane: DataPlane, region: str, service: str, message: str
) -> None:
    url, headers, body = _signed(bare_dataplane, region=region, service=service)
    reply = _send("POST", url, headers, body)
    _assert_aws_error(reply, 403, "InvalidSignatureException", message)


def test_tamper_makes_every_signature_wrong(bare_dataplane: DataPlane) -> None:
    url, headers, body = _signed(bare_dataplane)
    bare_dataplane.tamper = True
    _assert_aws_error(_send("POST", url, headers, body), 403, "InvalidSignatureException", "The")
    bare_dataplane.tamper = False
    assert _send("POST", url, headers, body).status == 200
    assert bare_dataplane.rejected == {"bad_signature": 1} and bare_dataplane.accepted == 1


def test_an_unknown_workspace_is_404_after_authentication(bare_dataplane: DataPlane) -> None:
    url, headers, body = _signed(bare_dataplane, path="/workspaces/ws-nope/api/v1/remote_write")
    reply = _send("POST", url, headers, body)
    _assert_aws_error(reply, 404, "ResourceNotFoundException", "Workspace not found: ws-nope")
    reply = _send("POST", url, {}, body)
    assert reply.status == 403  # unauthenticated callers learn nothing about workspaces


# -- forwarding to the receiver --------------------------------------------------------


def test_accepted_writes_and_queries_reach_the_receiver(
    dataplane: DataPlane, receiver_prometheus: Prometheus
) -> None:
    name = f"ampd_dp_{uuid.uuid4().hex[:8]}"
    payload = remote_write.body(
        [({"__name__": name, "job": "dp"}, [(7.5, int(time.time() * 1000))])]
    )
    url, headers, body = _signed(dataplane, body=payload, headers=remote_write.HEADERS)
    assert _send("POST", url, headers, body).status == 204
    assert receiver_prometheus.query(name)[0]["value"][1] == "7.5"

    for path in (f"api/v1/query?query={name}", "api/v1/labels", "api/v1/label/job/values"):
        url, headers, body = _signed(
            dataplane, path=f"/workspaces/{WORKSPACE_ID}/{path}", method="GET", body=b""
        )
        reply = _send("GET", url, headers, body)
        assert reply.status == 200 and reply.json()["status"] == "success", reply
    assert "dp" in reply.json()["data"]


# -- real Prometheus, end to end --------------------------------------------------------


def _agent_config(app: SampleApp, remote_write_url: str, extra: str = "") -> str:
    return f"""
global:
  scrape_interval: 1s
  external_labels: {{cluster: e2e}}
scrape_configs:
  - job_name: sample
    static_configs: [{{targets: ["{app.target}"]}}]
remote_write:
  - url: {remote_write_url}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 500ms}}
{extra}"""


@pytest.fixture
def agent_prometheus() -> Iterator[list[Prometheus]]:
    started: list[Prometheus] = []
    yield started
    for prom in started:
        prom.stop()


@pytest.mark.slow
@pytest.mark.prometheus
def test_end_to_end_sample_app_to_receiver_through_the_proxy(
    *,
    aws_env: str,
    sample_app: SampleApp,
    dataplane: DataPlane,
    receiver_prometheus: Prometheus,
    start_proxy: StartProxy,
    agent_prometheus: list[Prometheus],
    prometheus_bin: PromBin,
) -> None:
    """An agent of each supported version, through the signing proxy."""
    proxy = start_proxy(dataplane.url)
    config = _agent_config(sample_app, f"{proxy.url}{WRITE_PATH}")
    agent = Prometheus(config, mode="agent", binary=str(prometheus_bin.binary)).start()
    agent_prometheus.append(agent)

    selector = f'ampd_demo_requests_total{{instance="{sample_app.target}"}}'
    receiver_prometheus.wait_for(selector, timeout=30)

    # The same series, read back through the signed query path: proxy -> stand-in -> receiver.
    query = f"/workspaces/{WORKSPACE_ID}/api/v1/query?query={selector}"
    reply = http_call("GET", proxy.url + query.replace('"', "%22").replace(" ", "%20"))
    assert reply.status == 200, reply
    result = reply.json()["data"]["result"]
    assert result[0]["metric"]["job"] == "sample"
    assert result[0]["metric"]["cluster"] == "e2e"
    assert float(result[0]["value"][1]) >= 1
    assert dataplane.rejected == {}
    assert (
        proxy.wait_metric("ampd_proxy_requests_total", {"path_kind": "remote_write", "code": "204"})
        >= 1
    )


@pytest.mark.slow
@pytest.mark.prometheus
def test_the_sigv4_block_signs_only_on_a_prometheus_that_can(
    sample_app: SampleApp,
    bare_dataplane: DataPlane,
    agent_prometheus: list[Prometheus],
    prometheus_bin: PromBin,
) -> None:
    """DESIGN §6, the evidence `signing: auto` relies on: with `sigv4` set, Debian 12's
    2.42 sends remote_write without an Authorization header (403, samples dropped);
    Debian 13's 2.53 signs, and the data plane accepts."""
    sigv4 = f"    sigv4: {{region: {REGION}, access_key: {KEY_ID}, secret_key: {SECRET}}}\n"
    config = _agent_config(sample_app, bare_dataplane.remote_write_url(WORKSPACE_ID))
    agent = Prometheus(
        config.rstrip("\n") + "\n" + sigv4, mode="agent", binary=str(prometheus_bin.binary)
    ).start()
    agent_prometheus.append(agent)

    wait_for(lambda: bare_dataplane.seen, timeout=30, what="a remote-write request")
    first = bare_dataplane.seen[0]
    if prometheus_bin.can_sign:
        assert first.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
        assert first.verdict.reason == "accepted" and first.status == 200
        assert bare_dataplane.accepted_key_ids[0] == KEY_ID
        assert bare_dataplane.rejected == {}
    else:
        assert "authorization" not in first.headers
        assert first.verdict.message == "Missing Authentication Token"
        assert bare_dataplane.accepted == 0
        # A 403 is not retried: the samples are dropped.
        failed = "prometheus_remote_storage_samples_failed_total"
        wait_for(lambda: agent.own_metric(failed) > 0, timeout=15, what="failed samples reported")


# -- standalone stand-ins ----------------------------------------------------------------


def _standalone(module: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", f"tests.harness.{module}", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the process prints one line once started
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_standalone_sample_app_and_dataplane() -> None:
    app, app_info = _standalone("sample_app", "--port", "0")
    dp, dp_info = _standalone(
        "dataplane",
        "--port",
        "0",
        "--workspace",
        WORKSPACE_ID,
        "--credential",
        f"{KEY_ID}={SECRET}",
    )
    try:
        metrics = http_call("GET", app_info["metrics_url"])
        assert b"ampd_demo_temperature_celsius" in metrics.body
        assert b"ampd_demo_requests_total 1.0" in metrics.body
        reply = http_call("POST", dp_info["url"] + WRITE_PATH, body=b"x")
        assert reply.json() == {"message": MSG_MISSING}
    finally:
        assert _stop(app) == 0
        assert _stop(dp) == 0
