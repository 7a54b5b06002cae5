"""The SigV4 signer and the built-in signing proxy, against the verifying AMP stand-in."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.credentials import CredentialProvider, RefreshableCredentials
from moto.server import ThreadedMotoServer
from moto.sts.models import sts_backends
from multidict import CIMultiDict, CIMultiDictProxy
from structlog.testing import capture_logs

from ampd.gateways.sigv4 import Signer, SigningError
from ampd.proxy import run as proxy_run
from ampd.proxy.config import ProxyConfig, ProxyConfigError, load, parse
from ampd.proxy.server import path_kind
from tests.harness import remote_write
from tests.harness.aio import Reply, free_port, http_call
from tests.harness.dataplane import DataPlane, verify_sigv4
from tests.harness.fixtures_dataplane import KEY_ID, REGION, SECRET, WORKSPACE_ID, StartProxy
from tests.harness.imds import ImdsServer
from tests.harness.wait import wait_for

WRITE_PATH = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"
QUERY_PATH = f"/workspaces/{WORKSPACE_ID}/api/v1/query"
REPO = Path(__file__).resolve().parents[2]


def _write_body(value: float = 1.0) -> bytes:
    now = int(time.time() * 1000)
    return remote_write.body([({"__name__": "ampd_test_metric", "job": "t"}, [(value, now)])])


def _post_write(url: str, **headers: str) -> Reply:
    return http_call(
        "POST", url + WRITE_PATH, headers={**remote_write.HEADERS, **headers}, body=_write_body()
    )


# -- settings file ---------------------------------------------------------------


GOOD: dict[str, Any] = {
    "listen": "127.0.0.1:8005",
    "region": "us-east-1",
    "service": "aps",
    "upstream": "https://aps-workspaces.us-east-1.amazonaws.com",
    "workspace_id": "ws-abc",
    "assume_role_arn": None,
    "allow_non_loopback": False,
    "allowed_uids": ["ampd-prometheus", "ampd-grafana"],
}


def test_config_parses_the_rendered_shape(tmp_path: Path) -> None:
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps(GOOD))
    config = load(path)
    assert config == ProxyConfig(
        listen_host="127.0.0.1",
        listen_port=8005,
        region="us-east-1",
        upstream="https://aps-workspaces.us-east-1.amazonaws.com",
        service="aps",
        workspace_id="ws-abc",
        allowed_uids=("ampd-prometheus", "ampd-grafana"),
    )
    assert config.upstream_host == "aps-workspaces.us-east-1.amazonaws.com"
    assert parse({**GOOD, "listen": "[::1]:9"}).listen == "[::1]:9"
    assert parse({**GOOD, "listen": "0.0.0.0:8005", "allow_non_loopback": True}).listen_port == 8005
    assert parse({**GOOD, "upstream": "http://127.0.0.1:9/"}).upstream == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"listen": "0.0.0.0:8005"}, "listen", "not a loopback address"),
        ({"listen": "10.0.0.5:8005"}, "listen", "allow_non_loopback"),
        ({"listen": "proxy.example:8005"}, "listen", "not an IP address"),
        ({"listen": "127.0.0.1"}, "listen", "HOST:PORT"),
        ({"region": "auto"}, "region", "not an AWS region"),
        ({"upstream": "ftp://x"}, "upstream", "http(s)"),
        ({"upstream": "https://h/workspaces/ws-abc"}, "upstream", "HOST[:PORT] only"),
        ({"workspace_id": "ws/../x"}, "workspace_id", "not a workspace id"),
        ({"assume_role_arn": "role"}, "assume_role_arn", "not an IAM role ARN"),
        ({"allow_non_loopback": "yes"}, "allow_non_loopback", "true or false"),
        ({"listen": None}, "listen", "is required"),
        ({"extra": 1}, "extra", "unknown field"),
    ],
)
def test_config_errors_name_file_and_field(
    tmp_path: Path, change: dict[str, Any], field: str, words: str
) -> None:
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(ProxyConfigError) as err:
        load(path)
    assert err.value.field == field
    assert str(err.value).startswith(f"{path}: {field}: ")
    assert words in str(err.value)


def test_config_unreadable_or_not_json(tmp_path: Path) -> None:
    with pytest.raises(ProxyConfigError, match=r"proxy.json: cannot read"):
        load(tmp_path / "proxy.json")
    (tmp_path / "bad.json").write_text('{"listen": ')
    with pytest.raises(ProxyConfigError, match=r"bad.json: line 1 column"):
        load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/workspaces/ws-1/api/v1/remote_write", "remote_write"),
        ("/workspaces/ws-1/api/v1/query_range", "query"),
        ("/workspaces/ws-1/api/v1/label/job/values", "query"),
        ("/workspaces/ws-1/alertmanager/api/v2/alerts", "alertmanager"),
        ("/workspaces/ws-1/api/v1/rules", "rules"),
        ("/workspaces/ws-1/whatever", "other"),
        ("/", "other"),
    ],
)
def test_path_kind(path: str, kind: str) -> None:
    assert path_kind(path) == kind


# -- signer ------------------------------------------------------------------------


def test_signer_signs_for_aps_with_a_verifiable_signature(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-value")
    signer = Signer(REGION)
    body = b"payload"
    url = f"http://127.0.0.1:1{WRITE_PATH}?a=b%20c"
    headers = signer.sign("post", url, {"Host": "127.0.0.1:1", "Content-Type": "x/y"}, body)
    auth = headers["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert f"/{REGION}/aps/aws4_request" in auth
    assert "x-amz-security-token" in auth.split("SignedHeaders=")[1]
    assert headers["X-Amz-Security-Token"] == "session-token-value"
    verdict = verify_sigv4(
        "POST",
        "127.0.0.1:1",
        f"{WRITE_PATH}?a=b%20c",
        CIMultiDictProxy(CIMultiDict(headers)),
        body,
        credentials_lookup={KEY_ID: SECRET}.get,
        region=REGION,
        service="aps",
        now=time.time(),
    )
    assert verdict.ok, verdict
    status = signer.credential_status()
    assert status.ok and status.method == "env" and status.access_key_id_suffix == KEY_ID[-4:]
    assert SECRET not in json.dumps(status.as_dict())


def test_signer_without_credentials_raises(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    signer = Signer(REGION)
    with pytest.raises(SigningError, match="no AWS credentials found"):
        signer.sign("GET", "http://127.0.0.1:1/", {}, b"")
    status = signer.credential_status()
    assert not status.ok and status.error and "no AWS credentials" in status.error


# -- proxy: signing, forwarding, refusing ----------------------------------------


def test_proxy_signs_and_the_verifier_accepts(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    reply = _post_write(proxy.url)
    assert reply.status == 200, reply
    assert bare_dataplane.accepted == 1 and not bare_dataplane.rejected
    assert bare_dataplane.accepted_key_ids == [KEY_ID]
    seen = bare_dataplane.seen[0]
    assert seen.host == f"127.0.0.1:{bare_dataplane.port}"
    signed = seen.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "content-encoding", "content-type"} <= set(signed)


def test_query_strings_are_normalised_before_signing(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    # '+' for spaces, raw brackets and quotes, a repeated key, an empty value.
    target = QUERY_PATH + '?query=sum(rate(x{job="a+b"}[5m]))+by+(job)&time=&match[]=1&match[]=0'
    assert http_call("GET", proxy.url + target).status == 200
    form = b"query=up%7Bjob%3D%22a%22%7D&time=1700000000"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert http_call("POST", proxy.url + QUERY_PATH, headers=headers, body=form).status == 200
    assert bare_dataplane.accepted == 2, bare_dataplane.rejected


def test_client_credentials_are_replaced_not_forwarded(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    forged = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAFORGED/20200101/us-east-1/aps/"
        "aws4_request, SignedHeaders=host, Signature=00",
        "X-Amz-Security-Token": "forged-token",
        "X-Amz-Date": "20200101T000000Z",
    }
    assert _post_write(proxy.url, **forged).status == 200
    seen = bare_dataplane.seen[0]
    assert seen.verdict.access_key_id == KEY_ID
    assert "x-amz-security-token" not in seen.headers
    assert seen.headers["x-amz-date"] != "20200101T000000Z"


def test_client_host_header_cannot_redirect_the_proxy(
    aws_env: str, bare_dataplane: DataPlane, aws_keys: dict[str, str], start_proxy: StartProxy
) -> None:
    with DataPlane(aws_keys.get, {WORKSPACE_ID}) as decoy:
        proxy = start_proxy(bare_dataplane.url)
        decoy_host = f"127.0.0.1:{decoy.port}"
        assert _post_write(proxy.url, Host=decoy_host).status == 200
        absolute = f"http://{decoy_host}{QUERY_PATH}?query=up"
        assert http_call("GET", proxy.url, target=absolute).status == 200
        assert decoy.seen == []
        assert bare_dataplane.accepted == 2
        assert {s.host for s in bare_dataplane.seen} == {f"127.0.0.1:{bare_dataplane.port}"}


@pytest.mark.parametrize(
    "target",
    [
        "/workspaces/ws-someone-else/api/v1/remote_write",
        "/api/v1/query?query=up",
        f"/workspaces/{WORKSPACE_ID}/../ws-someone-else/api/v1/query",
        f"/workspaces/{WORKSPACE_ID}%2F..%2Fws-someone-else/api/v1/query",
        f"/workspaces/{WORKSPACE_ID}",
    ],
)
def test_paths_outside_the_workspace_are_refused(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy, target: str
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    reply = http_call("GET", proxy.url, target=target)
    assert reply.status == 403
    assert b"ampd proxy:" in reply.body
    assert bare_dataplane.seen == []
    assert proxy.metric("ampd_proxy_requests_total", {"path_kind": "refused", "code": "403"}) == 1


def test_other_methods_are_refused(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    assert http_call("DELETE", proxy.url + WRITE_PATH).status == 405
    assert bare_dataplane.seen == []


def test_without_a_workspace_id_nothing_is_forwarded(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    """Before ampd knows the workspace, the proxy signs for no workspace at all: a 503
    (Prometheus retries it) that says why, and nothing reaches the upstream."""
    proxy = start_proxy(bare_dataplane.url, workspace_id=None)
    for path in ("/workspaces/ws-unknown/api/v1/query?query=up", WRITE_PATH, "/other"):
        method = "POST" if path == WRITE_PATH else "GET"
        reply = http_call(method, proxy.url + path, body=b"x" if method == "POST" else b"")
        assert reply.status == 503, path
        assert b"no workspace id is known yet" in reply.body
    assert bare_dataplane.seen == []
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "no_workspace"}) == 3


@pytest.mark.parametrize("status", [429, 500, 503])
def test_upstream_status_and_body_pass_through(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy, status: int
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    bare_dataplane.fault = (status, b"upstream says no")
    reply = _post_write(proxy.url)
    assert (reply.status, reply.body) == (status, b"upstream says no")
    labels = {"path_kind": "remote_write", "code": str(status)}
    assert proxy.wait_metric("ampd_proxy_requests_total", labels) == 1


def test_large_responses_stream_through_intact(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    payload = os.urandom(3 * 1024 * 1024)
    bare_dataplane.fault = (200, payload)
    reply = http_call("GET", proxy.url + QUERY_PATH + "?query=up")
    assert reply.status == 200 and reply.body == payload
    assert proxy.wait_metric("ampd_proxy_response_bytes_total", at_least=len(payload)) == len(
        payload
    )


def test_upstream_connections_are_reused(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    for _ in range(5):
        assert _post_write(proxy.url).status == 200
    assert len({s.peer for s in bare_dataplane.seen}) == 1


def test_unreachable_upstream_is_a_clear_502(aws_env: str, start_proxy: StartProxy) -> None:
    upstream = f"http://127.0.0.1:{free_port()}"
    proxy = start_proxy(upstream)
    reply = _post_write(proxy.url)
    assert reply.status == 502
    assert reply.body.startswith(f"ampd proxy: upstream {upstream} unreachable".encode())
    assert proxy.metric("ampd_proxy_requests_total", {"path_kind": "remote_write", "code": "502"})


def test_missing_credentials_are_a_503_and_counted(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    bare_dataplane: DataPlane,
    start_proxy: StartProxy,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    proxy = start_proxy(bare_dataplane.url)
    reply = _post_write(proxy.url)
    assert reply.status == 503 and b"cannot sign request" in reply.body
    assert proxy.metric("ampd_proxy_signing_errors_total") == 1
    health = http_call("GET", proxy.url + "/healthz")
    assert health.status == 503
    assert health.json()["credentials"]["ok"] is False
    assert bare_dataplane.seen == []


# -- credentials rotate ------------------------------------------------------------


def test_rotated_environment_credentials_are_picked_up(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    aws_keys: dict[str, str],
    bare_dataplane: DataPlane,
    start_proxy: StartProxy,
) -> None:
    def expiring_soon() -> str:
        # Inside botocore's advisory refresh window: every use re-reads the environment.
        return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=12)).isoformat()

    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", expiring_soon())
    proxy = start_proxy(bare_dataplane.url)
    assert _post_write(proxy.url).status == 200

    new_key, new_secret = "AKIAAMPDTESTROTATED2", "rotated-secret-2"
    aws_keys.clear()
    aws_keys[new_key] = new_secret  # the old key no longer verifies
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", new_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", new_secret)
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", expiring_soon())
    assert _post_write(proxy.url).status == 200
    assert bare_dataplane.accepted_key_ids == [KEY_ID, new_key]
    health = http_call("GET", proxy.url + "/healthz").json()
    assert health["credentials"]["access_key_id_suffix"] == new_key[-4:]
    assert 0 < health["credentials"]["expires_in_seconds"] <= 12 * 60


class _RotatingProvider(CredentialProvider):
    """A credential source the test controls, refreshed by botocore like an instance
    role: each fetch hands out the newest key, valid for 20 minutes of ``now()``."""

    METHOD = "test-rotating"

    def __init__(self, keys: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.keys = keys  # (access key, secret, token); the last one is current
        self.offset = dt.timedelta(0)
        self.fetches = 0

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def _fetch(self) -> dict[str, str]:
        self.fetches += 1
        key, secret, token = self.keys[-1]
        expiry = self.now() + dt.timedelta(minutes=20)
        return {
            "access_key": key,
            "secret_key": secret,
            "token": token,
            "expiry_time": expiry.isoformat(),
        }

    def load(self) -> RefreshableCredentials:
        first = self._fetch()
        return RefreshableCredentials(
            first["access_key"],
            first["secret_key"],
            first["token"],
            dt.datetime.fromisoformat(first["expiry_time"]),
            refresh_using=self._fetch,
            method=self.METHOD,
            time_fetcher=self.now,
        )


def _session_with(provider: CredentialProvider) -> Callable[[], botocore.session.Session]:
    def factory() -> botocore.session.Session:
        session = botocore.session.Session()
        session.get_component("credential_provider").insert_before("env", provider)
        return session

    return factory


def test_credentials_refreshed_before_expiry_keep_being_accepted(
    aws_keys: dict[str, str], bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    provider = _RotatingProvider([("ASIAAMPDROLE0000001", "role-secret-1", "token-1")])
    aws_keys["ASIAAMPDROLE0000001"] = "role-secret-1"
    signer = Signer(REGION, session_factory=_session_with(provider))
    proxy = start_proxy(bare_dataplane.url, signer=signer)
    assert _post_write(proxy.url).status == 200
    assert _post_write(proxy.url).status == 200
    assert provider.fetches == 1  # valid for 20 minutes: not fetched again

    # The role's next key appears and the old one stops verifying; 11 minutes later the
    # current key is inside botocore's refresh window, so the next signature uses the new one.
    provider.keys.append(("ASIAAMPDROLE0000002", "role-secret-2", "token-2"))
    aws_keys["ASIAAMPDROLE0000002"] = "role-secret-2"
    del aws_keys["ASIAAMPDROLE0000001"]
    provider.offset = dt.timedelta(minutes=11)
    assert _post_write(proxy.url).status == 200
    assert bare_dataplane.accepted_key_ids == ["ASIAAMPDROLE0000001"] * 2 + ["ASIAAMPDROLE0000002"]
    assert bare_dataplane.seen[-1].headers["x-amz-security-token"] == "token-2"
    assert provider.fetches == 2
    health = http_call("GET", proxy.url + "/healthz").json()
    assert health["credentials"]["method"] == "test-rotating"
    assert health["credentials"]["access_key_id_suffix"] == "0002"


def test_instance_role_credentials_from_imds_sign_with_their_session_token(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    bare_dataplane: DataPlane,
    start_proxy: StartProxy,
) -> None:
    # (Rotation timing is covered above with a controlled clock: botocore stretches IMDS
    # expiries that are less than 12-20 minutes away, so it cannot be forced from here.)
    with ImdsServer(region=REGION) as imds:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED"):
            monkeypatch.delenv(name)
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint)
        bare_dataplane.credentials_lookup = imds.secret_for
        proxy = start_proxy(bare_dataplane.url)
        assert _post_write(proxy.url).status == 200
        role = imds.credentials
        assert bare_dataplane.accepted_key_ids == [role.access_key_id]
        assert bare_dataplane.seen[0].headers["x-amz-security-token"] == role.token
        health = http_call("GET", proxy.url + "/healthz").json()["credentials"]
        assert health["method"] == "iam-role"
        assert health["access_key_id_suffix"] == role.access_key_id[-4:]
        assert 5 * 3600 < health["expires_in_seconds"] <= 6 * 3600

        imds.revoke(role.access_key_id)  # AWS would answer like this for a revoked key
        reply = _post_write(proxy.url)
        assert reply.status == 403
        assert reply.json() == {"message": "The security token included in the request is invalid."}


# -- health, metrics, logs ------------------------------------------------------------


def test_healthz_and_metrics(
    aws_env: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    proxy = start_proxy(bare_dataplane.url)
    body = _write_body()
    reply = http_call("POST", proxy.url + WRITE_PATH, headers=remote_write.HEADERS, body=body)
    assert reply.status == 200

    labels = {"path_kind": "remote_write", "code": "200"}
    assert proxy.wait_metric("ampd_proxy_requests_total", labels) == 1
    health = http_call("GET", proxy.url + "/healthz")
    assert health.status == 200
    doc = health.json()
    assert doc["status"] == "ok"
    assert doc["workspace_id"] == WORKSPACE_ID and doc["upstream"] == bare_dataplane.url
    assert doc["credentials"] == {
        "ok": True,
        "method": "env",
        "access_key_id_suffix": KEY_ID[-4:],
        "expires_in_seconds": None,
        "error": None,
    }

    metrics = http_call("GET", proxy.url + "/metrics")
    assert metrics.status == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    text = metrics.body.decode()
    assert 'ampd_proxy_requests_total{code="200",path_kind="remote_write"} 1.0' in text
    assert f"ampd_proxy_request_bytes_total {float(len(body))}" in text
    assert "ampd_proxy_response_bytes_total 0.0" in text
    assert "ampd_proxy_upstream_latency_seconds_count 1.0" in text
    assert "ampd_proxy_signing_errors_total 0.0" in text
    # health and metrics endpoints are not themselves counted as proxied requests
    assert "healthz" not in text


def test_logs_never_carry_credentials(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    bare_dataplane: DataPlane,
    start_proxy: StartProxy,
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-do-not-log")
    with capture_logs() as logs:
        proxy = start_proxy(bare_dataplane.url)
        assert _post_write(proxy.url).status == 200
        bare_dataplane.fault = (500, b"boom")
        assert _post_write(proxy.url, Authorization="client-secret-header").status == 500
        proxy.wait_metric("ampd_proxy_requests_total", {"path_kind": "remote_write", "code": "500"})
    events = [e["event"] for e in logs]
    assert "proxy.listening" in events and events.count("proxy.request") == 2
    dumped = repr(logs)
    for secret in (SECRET, "session-token-do-not-log", "client-secret-header", "Signature="):
        assert secret not in dumped


# -- the process: main(), SIGTERM -----------------------------------------------------


def _proxy_process(tmp_path: Path, config: dict[str, Any]) -> subprocess.Popen[str]:
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "ampd.proxy", "--config", str(path), "--log-level", "DEBUG"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _read_event(proc: subprocess.Popen[str], event: str, timeout: float = 15) -> dict[str, Any]:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    result: dict[str, Any] = {}

    def reader() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            doc = json.loads(line)
            if doc.get("event") == event:
                result.update(doc)
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(max(0.0, deadline - time.monotonic()))
    assert result, f"no {event} within {timeout}s"
    return result


def test_sigterm_drains_in_flight_requests_then_exits_0(
    aws_env: str, bare_dataplane: DataPlane, tmp_path: Path
) -> None:
    config = {**GOOD, "listen": "127.0.0.1:0", "upstream": bare_dataplane.url}
    config["workspace_id"] = WORKSPACE_ID
    config["allowed_uids"] = [os.getuid()]
    proc = _proxy_process(tmp_path, config)
    try:
        url = _read_event(proc, "proxy.listening")["url"]
        bare_dataplane.delay = 1.0
        replies: list[Reply] = []
        client = threading.Thread(target=lambda: replies.append(_post_write(url)))
        client.start()
        wait_for(lambda: bare_dataplane.in_flight, 10, 0.01, "the request in flight upstream")
        assert bare_dataplane.in_flight == 1
        proc.send_signal(signal.SIGTERM)
        client.join(10)
        assert [r.status for r in replies] == [200]  # finished, not cut
        assert proc.wait(timeout=15) == 0
        with pytest.raises(OSError):
            http_call("GET", url + "/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_main_rejects_invalid_settings(tmp_path: Path) -> None:
    path = tmp_path / "proxy.json"
    path.write_text(json.dumps({**GOOD, "listen": "0.0.0.0:0"}))
    with capture_logs() as logs:
        assert proxy_run.main(path) == 1
    assert logs[0]["event"] == "proxy.config_invalid"
    assert f"{path}: listen:" in logs[0]["error"]


@pytest.fixture
def moto_sts(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto in server mode answering STS on loopback; the environment points STS at it."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _moto_assumed_secret(access_key_id: str) -> str | None:
    for account in sts_backends.values():
        for backend in account.values():
            for role in backend.assumed_roles:
                if role.access_key_id == access_key_id:
                    return str(role.secret_access_key)
    return None


def test_assume_role_signs_with_the_roles_credentials(
    moto_sts: str, bare_dataplane: DataPlane, start_proxy: StartProxy
) -> None:
    role = "arn:aws:iam::123456789012:role/ampd-writer"
    bare_dataplane.credentials_lookup = _moto_assumed_secret  # only assumed-role keys verify
    proxy = start_proxy(bare_dataplane.url, signer=Signer(REGION, assume_role_arn=role))
    assert _post_write(proxy.url).status == 200
    (key_id,) = bare_dataplane.accepted_key_ids
    assert key_id != KEY_ID
    assert bare_dataplane.seen[0].headers["x-amz-security-token"]
    health = http_call("GET", proxy.url + "/healthz").json()
    assert health["credentials"]["method"] == "assume-role"
    assert health["credentials"]["expires_in_seconds"] > 0
