"""The data plane's fault injection, as a client sees it: 429 with Retry-After, 503, and
a window in which connections are refused (open keep-alive connections dropped too)."""

from __future__ import annotations

import http.client

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.harness.aio import Reply, http_call
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_dataplane import KEY_ID, REGION, SECRET, WORKSPACE_ID

PATH = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"


def signed_post(dp: DataPlane) -> Reply:
    request = AWSRequest(method="POST", url=dp.url + PATH, data=b"x", headers={"A": "b"})
    SigV4Auth(Credentials(KEY_ID, SECRET), "aps", REGION).add_auth(request)
    return http_call("POST", dp.url + PATH, headers=dict(request.headers.items()), body=b"x")


def test_throttle_answers_429_with_retry_after(bare_dataplane: DataPlane) -> None:
    bare_dataplane.throttle(retry_after=3)
    reply = signed_post(bare_dataplane)
    assert reply.status == 429
    assert reply.headers["retry-after"] == "3"
    assert reply.headers["x-amzn-errortype"] == "ThrottlingException"
    bare_dataplane.throttle(retry_after=None)
    assert "retry-after" not in signed_post(bare_dataplane).headers
    assert bare_dataplane.faulted == 2
    bare_dataplane.healthy()
    assert signed_post(bare_dataplane).status == 200


def test_unavailable_answers_503(bare_dataplane: DataPlane) -> None:
    bare_dataplane.unavailable()
    reply = signed_post(bare_dataplane)
    assert reply.status == 503
    assert reply.headers["x-amzn-errortype"] == "ServiceUnavailableException"
    bare_dataplane.healthy()
    assert signed_post(bare_dataplane).status == 200


def test_refused_window_then_back_on_the_same_port(bare_dataplane: DataPlane) -> None:
    port = bare_dataplane.port
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.request("GET", "/")
    idle.getresponse().read()  # a keep-alive connection, open before the window
    bare_dataplane.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        signed_post(bare_dataplane)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        idle.request("GET", "/")  # dropped with the listener, like a host that went away
        idle.getresponse().read()
    bare_dataplane.accept_connections()
    assert bare_dataplane.port == port
    assert signed_post(bare_dataplane).status == 200
