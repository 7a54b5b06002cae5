"""The proxy signs only for its local users (#17): each loopback connection is mapped to
the uid owning the client's socket (ampd.gateways.peers, from /proc/self/net/tcp{,6}),
and users that are not allowed get 403 and a count. Tested with a real second uid: the
clients below run in child processes that drop to ``nobody`` (the suite runs as root)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ampd.gateways import peers
from ampd.gateways.sigv4 import Signer
from ampd.proxy.config import ProxyConfig, ProxyConfigError, parse
from ampd.proxy.peers import PeerGate
from tests.harness.aio import http_call
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_dataplane import REGION, WORKSPACE_ID
from tests.harness.proxy import ThreadedProxy

WRITE_PATH = f"/workspaces/{WORKSPACE_ID}/api/v1/remote_write"
NOBODY = pwd.getpwnam("nobody").pw_uid
# The child interpreter must be one `nobody` can run: not the virtualenv's (under /root).
CHILD_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"

# A client that POSTs one write and prints the reply as JSON; stdlib only.
CLIENT = textwrap.dedent(
    """
    import http.client, json, os, sys
    host, port = sys.argv[1], int(sys.argv[2])
    conn = http.client.HTTPConnection(host, port, timeout=10)
    write = sys.argv[3].endswith("/remote_write")
    conn.request("POST" if write else "GET", sys.argv[3], body=b"x" * 64 if write else None,
                 headers={"Content-Type": "application/x-protobuf"})
    r = conn.getresponse()
    print(json.dumps({"uid": os.getuid(), "status": r.status, "body": r.read().decode()}))
    """
)


def _as(uid: int | None) -> Callable[[], None] | None:
    if uid is None:
        return None

    def drop() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    return drop


def client_call(host: str, port: int, uid: int | None, path: str = WRITE_PATH) -> dict[str, Any]:
    """One request from a child process running as ``uid`` (None: as this process)."""
    done = subprocess.run(
        [CHILD_PYTHON, "-I", "-c", CLIENT, host, str(port), path],
        preexec_fn=_as(uid),  # drops to uid before exec; the child only runs CLIENT
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["uid"] == (os.getuid() if uid is None else uid)
    return result


@pytest.fixture
def proxy_for(aws_env: str, bare_dataplane: DataPlane) -> Iterator[Callable[..., ThreadedProxy]]:
    running: list[ThreadedProxy] = []

    def start(host: str = "127.0.0.1", **settings: Any) -> ThreadedProxy:
        config = ProxyConfig(
            listen_host=host,
            listen_port=0,
            region=REGION,
            upstream=bare_dataplane.url,
            workspace_id=WORKSPACE_ID,
            **settings,
        )
        proxy = ThreadedProxy(config, Signer(REGION, "aps"))
        running.append(proxy.start())
        return proxy

    yield start
    for proxy in reversed(running):
        proxy.stop()


def _port(proxy: ThreadedProxy) -> int:
    assert proxy.server is not None and proxy.server.address is not None
    return proxy.server.address[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def test_another_local_user_is_refused_and_counted(
    proxy_for: Callable[..., ThreadedProxy], bare_dataplane: DataPlane, host: str
) -> None:
    proxy = proxy_for(host)
    port = _port(proxy)

    refused = client_call(host, port, NOBODY)
    assert refused["status"] == 403
    assert "signs only for the local users" in refused["body"]
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "uid"}) == 1
    assert bare_dataplane.seen == []  # nothing was signed or sent

    # root (this process's uid, and uid 0) passes, and the request is signed and accepted
    ok = client_call(host, port, None)
    assert ok["status"] == 200
    [seen] = bare_dataplane.seen
    assert seen.verdict.reason == "accepted"
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "uid"}) == 1

    text = http_call("GET", proxy.url + "/metrics").body.decode()
    assert 'ampd_proxy_refused_total{reason="uid"} 1.0' in text
    assert 'ampd_proxy_refused_total{reason="peer_unknown"} 0.0' in text


def test_an_allowed_uid_from_the_settings_is_signed_for(
    proxy_for: Callable[..., ThreadedProxy], bare_dataplane: DataPlane
) -> None:
    proxy = proxy_for(allowed_uids=("nobody",))
    assert proxy.server is not None and proxy.server.gate is not None
    assert proxy.server.gate.allowed == frozenset({NOBODY})
    assert client_call("127.0.0.1", _port(proxy), NOBODY)["status"] == 200
    # root is not in that list: it is refused like anyone else
    assert client_call("127.0.0.1", _port(proxy), None)["status"] == 403
    assert [s.verdict.reason for s in bare_dataplane.seen] == ["accepted"]


def test_any_switches_the_check_off(proxy_for: Callable[..., ThreadedProxy]) -> None:
    proxy = proxy_for(allowed_uids="any")
    assert client_call("127.0.0.1", _port(proxy), NOBODY)["status"] == 200
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "uid"}) == 0


def test_health_and_metrics_do_not_need_an_allowed_uid(
    proxy_for: Callable[..., ThreadedProxy],
) -> None:
    proxy = proxy_for()
    assert client_call("127.0.0.1", _port(proxy), NOBODY, "/healthz")["status"] == 200
    assert client_call("127.0.0.1", _port(proxy), NOBODY, "/metrics")["status"] == 200


def test_default_allowed_uids() -> None:
    expected = {os.getuid(), 0}
    for name in ("ampd", "grafana"):
        try:
            expected.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            continue
    assert peers.default_allowed_uids() == frozenset(expected)
    assert peers.uids_of(["nobody", "no-such-user-here"]) == {"nobody": NOBODY}


# -- the socket table lookup itself --------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import socket, sys
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    s = socket.socket(family)
    s.connect((sys.argv[1], int(sys.argv[2])))
    print(s.getsockname()[1], flush=True)
    sys.stdin.readline()  # keep the connection open until told
    """
)


@pytest.mark.parametrize(
    ("listen", "connect"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "127.0.0.1")],
    ids=["ipv4", "ipv6", "ipv4-on-a-dual-stack-listener"],
)
def test_socket_owner_finds_the_uid_of_the_peer(listen: str, connect: str) -> None:
    family = socket.AF_INET6 if ":" in listen else socket.AF_INET
    with socket.socket(family) as server:
        if family == socket.AF_INET6:
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind((listen, 0))
        server.listen()
        with subprocess.Popen(
            [CHILD_PYTHON, "-I", "-c", HOLDER, connect, str(server.getsockname()[1])],
            preexec_fn=_as(NOBODY),  # noqa: PLW1509 -- the child only runs HOLDER
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        ) as holder:
            try:
                _check_owner(server, holder)
            finally:
                if holder.poll() is None:
                    holder.kill()


def _check_owner(server: socket.socket, holder: subprocess.Popen[str]) -> None:
    assert holder.stdout is not None and holder.stdin is not None
    client_port = int(holder.stdout.readline())
    conn, peer = server.accept()
    with conn:
        own = conn.getsockname()
        assert peer[1] == client_port
        assert peers.socket_owner(peer[:2], own[:2]) == NOBODY
        # our own end of the connection is root's, seen the other way round
        assert peers.socket_owner(own[:2], peer[:2]) == os.getuid()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        # gone (or orphaned, which the kernel shows as uid 0): nobody vouches for it
        deadline = time.monotonic() + 5
        while peers.socket_owner(peer[:2], own[:2]) is not None:
            assert time.monotonic() < deadline, "a closed socket still has an owner"
            time.sleep(0.01)


def test_socket_owner_without_proc_tables(tmp_path: Any) -> None:
    with pytest.raises(peers.PeerLookupError):
        peers.socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2), proc_net=tmp_path)


# -- the gate's decisions, with the lookup passed in -----------------------------------


class _Transport:
    def __init__(self, peer: tuple[str, int], own: tuple[str, int]) -> None:
        self.extra = {"peername": peer, "sockname": own}

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)


@pytest.mark.parametrize(
    ("owner", "peer", "allow_remote", "reason"),
    [
        (1000, "127.0.0.1", False, "uid"),
        (0, "127.0.0.1", False, None),
        (None, "127.0.0.1", False, "peer_unknown"),
        (None, "127.0.0.1", True, "peer_unknown"),  # a closed loopback client
        (None, "192.0.2.7", False, "peer_unknown"),
        (None, "192.0.2.7", True, None),  # a remote host, and non-loopback was allowed
        (1000, "192.0.2.7", True, "uid"),  # a local user on a non-loopback address
    ],
)
def test_gate_decisions(
    owner: int | None, peer: str, allow_remote: bool, reason: str | None
) -> None:
    calls: list[object] = []

    def lookup(a: tuple[str, int], b: tuple[str, int]) -> int | None:
        calls.append((a, b))
        return owner

    gate = PeerGate({0}, allow_remote=allow_remote, owner=lookup)
    transport = _Transport((peer, 40000), ("127.0.0.1", 8005))
    verdict = gate.check(transport)  # type: ignore[arg-type]
    assert (verdict.reason, verdict.uid) == (reason, owner)
    gate.check(transport)  # type: ignore[arg-type]
    assert len(calls) == 1  # decided once per connection


def test_gate_fails_closed_when_the_tables_cannot_be_read() -> None:
    def broken(a: tuple[str, int], b: tuple[str, int]) -> int | None:
        raise peers.PeerLookupError(2, "no /proc")

    gate = PeerGate({0}, owner=broken)
    verdict = gate.check(_Transport(("127.0.0.1", 1), ("127.0.0.1", 2)))  # type: ignore[arg-type]
    assert verdict.reason == "peer_unknown"
    assert gate.check(None).reason == "peer_unknown"


# -- settings --------------------------------------------------------------------------

BASE = {"listen": "127.0.0.1:8005", "region": "us-east-1", "upstream": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("value", "parsed"),
    [(None, None), ("any", "any"), ([0, "ampd", "grafana", 472], (0, "ampd", "grafana", 472))],
)
def test_allowed_uids_setting(value: object, parsed: object) -> None:
    assert parse({**BASE, "allowed_uids": value}).allowed_uids == parsed
    assert parse(BASE).allowed_uids is None


@pytest.mark.parametrize("value", ["all", [True], [-1], ["Root User"], {"uid": 0}, [1.5]])
def test_allowed_uids_setting_errors(value: object) -> None:
    with pytest.raises(ProxyConfigError) as err:
        parse({**BASE, "allowed_uids": value})
    assert err.value.field == "allowed_uids"
