"""Fixtures for the data plane: a receiver Prometheus, the verifying AMP stand-in, the
sample app and the signing proxy. Loaded by tests/conftest.py as a plugin."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ampd.gateways.sigv4 import Signer
from ampd.proxy.config import ProxyConfig
from ampd.proxy.relay import RequestSigner
from tests.harness.dataplane import DataPlane
from tests.harness.prom import Prometheus, prometheus_available
from tests.harness.proxy import ThreadedProxy
from tests.harness.sample_app import SampleApp

REGION = "us-east-1"
WORKSPACE_ID = "ws-0a1b2c3d-test"
# Made-up keys for the stand-ins only; nothing here reaches AWS.
KEY_ID = "AKIAAMPDTEST0000001"
SECRET = "ampd-test-secret-0000000000000000000001"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """botocore's chain sees only the environment: one static test key, no config
    files, no instance metadata. Returns the key id."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CREDENTIAL_EXPIRATION", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return KEY_ID


@pytest.fixture
def aws_keys() -> dict[str, str]:
    """Secrets the data plane accepts, by key id; tests add rotated keys to it."""
    return {KEY_ID: SECRET}


@pytest.fixture(scope="session")
def receiver_prometheus() -> Iterator[Prometheus]:
    """A real Prometheus in server mode with the remote-write receiver on."""
    if not prometheus_available():
        pytest.skip("needs /usr/bin/prometheus")
    with Prometheus(mode="server", remote_write_receiver=True) as prom:
        yield prom


@pytest.fixture
def dataplane(receiver_prometheus: Prometheus, aws_keys: dict[str, str]) -> Iterator[DataPlane]:
    """The verifying AMP stand-in, forwarding accepted requests to the receiver."""
    with DataPlane(aws_keys.get, {WORKSPACE_ID}, receiver_prometheus.url, region=REGION) as dp:
        yield dp


@pytest.fixture
def bare_dataplane(aws_keys: dict[str, str]) -> Iterator[DataPlane]:
    """The verifying stand-in without a receiver: accepted requests get 200."""
    with DataPlane(aws_keys.get, {WORKSPACE_ID}, None, region=REGION) as dp:
        yield dp


@pytest.fixture
def sample_app() -> Iterator[SampleApp]:
    with SampleApp() as app:
        yield app


StartProxy = Callable[..., ThreadedProxy]


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """``start_proxy(upstream, workspace_id=..., signer=..., **server_kwargs)`` starts a
    proxy on a free loopback port, signing for this process's user (root is in no
    default); all are stopped at teardown."""
    running: list[ThreadedProxy] = []

    def start(
        upstream: str,
        *,
        workspace_id: str | None = WORKSPACE_ID,
        signer: RequestSigner | None = None,
        region: str = REGION,
        service: str = "aps",
        allowed_uids: tuple[int | str, ...] | str | None = (os.getuid(),),
        **kwargs: Any,
    ) -> ThreadedProxy:
        config = ProxyConfig(
            listen_host="127.0.0.1",
            listen_port=0,
            region=region,
            upstream=upstream,
            service=service,
            workspace_id=workspace_id,
            allowed_uids=allowed_uids,
        )
        proxy = ThreadedProxy(config, signer or Signer(region, service), **kwargs)
        running.append(proxy.start())
        return proxy

    yield start
    for proxy in reversed(running):
        proxy.stop()
