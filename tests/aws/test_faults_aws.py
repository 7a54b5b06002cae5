"""AWS faults that are not errors of the service: a response held past ampd's read timeout,
session credentials rotated out under ampd, and a clock more than SigV4's five minutes off.

Each is reported by ``AwsReachable=False`` with a reason that names it, stops nothing local
(the same Prometheus, the signing proxy answering) and heals without a restart of ampd.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ampd.aws.gateway.base import READ_TIMEOUT
from tests.engine.test_faults import Rig, rig
from tests.harness.fixtures_local import free_port
from tests.harness.imds import ImdsServer
from tests.harness.wait import wait_for

__all__ = ["rig"]  # the fixture, shared with tests/engine/test_faults.py

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]


def with_proxy(r: Rig) -> int:
    port = free_port()
    r.aws_extra = {}
    base = r.state

    def state() -> dict[str, Any]:
        return {**base(), "proxy": {"enabled": True, "listen": f"127.0.0.1:{port}"}}

    r.state = state  # type: ignore[method-assign]  # this rig's state runs the proxy too
    return port


def proxy_up(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
        return bool(resp.status == 200)


def unreachable(r: Rig, reason: str, timeout: float = 90) -> dict[str, Any]:
    def said() -> dict[str, Any] | None:
        c = r.proc.condition("AwsReachable")
        return c if c and c["status"] == "False" and c["reason"] == reason else None

    return dict(wait_for(said, timeout, what=f"AwsReachable=False ({reason})"))


def recovered(r: Rig, pid: int, proxy_port: int | None = None) -> None:
    r.condition("AwsReachable", "True", timeout=120)
    r.proc.wait_healthy(timeout=120)
    r.still_running(pid)
    if proxy_port is not None:
        assert proxy_up(proxy_port)


def test_aws_response_held_past_the_read_timeout(rig: Rig) -> None:
    """The emulator holds every response longer than botocore's read timeout: the AWS side
    reports the timeout, the local side keeps running, and it heals once AWS answers."""
    port = with_proxy(rig)
    pid = rig.start()
    assert proxy_up(port)
    rig.aws.latency(READ_TIMEOUT + 3)
    cond = unreachable(rig, "Unreachable", timeout=120)
    assert "timeout" in cond["message"].lower(), cond
    assert rig.proc.ampd("status").returncode == 3
    rig.still_running(pid)
    assert proxy_up(port)
    rig.aws.clear_faults()
    recovered(rig, pid, port)


def write_credentials(path: Path, key: str, secret: str, token: str) -> None:
    path.write_text(
        f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        f"aws_session_token = {token}\n"
    )


def test_expired_session_token_shared_credentials_file(rig: Rig, tmp_path: Path) -> None:
    """The token in ~/.aws/credentials is rotated out; once the file holds the new one,
    ampd uses it without being restarted."""
    creds = tmp_path / "credentials"
    write_credentials(creds, "ASIAOLD", "old-secret", "token-old")
    rig.proc.extra_env.update(
        {
            "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "",
            "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        }
    )
    port = with_proxy(rig)
    pid = rig.start()
    rig.aws.expire_token("token-old")
    cond = unreachable(rig, "CredentialsExpired")
    assert "ExpiredToken" in cond["message"] and "expired" in cond["message"], cond
    rig.still_running(pid)
    assert proxy_up(port)
    write_credentials(creds, "ASIANEW", "new-secret", "token-new")
    recovered(rig, pid, port)
    daemon = rig.proc.proc
    assert daemon is not None and daemon.poll() is None  # the same ampd, never restarted


def test_expired_instance_role_credentials(rig: Rig, imds: ImdsServer) -> None:
    """The production path: instance-role keys from IMDS. The role's token is rotated out
    (AWS refuses it) and IMDS serves new keys: ampd fetches them by itself."""
    rig.proc.extra_env.update({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    pid = rig.start()
    old = imds.credentials
    assert any("security-credentials/ampd-writer" in p for _, p, _ in imds.requests)
    imds.rotate()
    rig.aws.expire_token(old.token)
    cond = unreachable(rig, "CredentialsExpired")
    assert "expired" in cond["message"], cond
    rig.still_running(pid)
    recovered(rig, pid)


def test_clock_skew_beyond_five_minutes(rig: Rig) -> None:
    port = with_proxy(rig)
    pid = rig.start()
    rig.aws.skew(400)
    cond = unreachable(rig, "ClockSkew")
    assert "Signature expired" in cond["message"] and "clock" in cond["message"], cond
    assert rig.proc.ampd("status").returncode == 3
    rig.still_running(pid)
    assert proxy_up(port)
    rig.aws.skew(-400)  # the other way round is refused too
    wait_for(
        lambda: (
            "not yet current" in ((rig.proc.condition("AwsReachable") or {}).get("message") or "")
        ),
        90,
        what="a not-yet-current signature reported",
    )
    rig.aws.skew(120)  # within SigV4's five minutes: accepted
    recovered(rig, pid, port)
