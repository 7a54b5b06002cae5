"""The proxy signs only for its local users (#17, #23): each loopback connection is mapped
to the uid owning the client's socket (ampd.gateways.peers: the exact sock_diag lookup,
the /proc/self/net/tcp{,6} scan where netlink is unavailable), and users that are not
allowed get 403 and a count. Root is in no default. Tested with a real second uid: the
clients below run in child processes that drop to ``nobody`` (the suite runs as root)."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import socket
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from ampd.core import PROCESS_USERS
from ampd.gateways import peers, sockdiag
from ampd.gateways.sigv4 import Signer
from ampd.proxy.config import ProxyConfig, ProxyConfigError, parse
from ampd.proxy.peers import PeerGate, resolve_allowed
from tests.harness.aio import http_call
from tests.harness.dataplane import DataPlane
from tests.harness.fixtures_dataplane import REGION, WORKSPACE_ID
from tests.harness.proxy import ThreadedProxy
from tests.harness.wait import wait_for

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
    proxy = proxy_for(host, allowed_uids=(0,))
    port = _port(proxy)

    refused = client_call(host, port, NOBODY)
    assert refused["status"] == 403
    assert "signs only for the local users" in refused["body"]
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "uid"}) == 1
    assert bare_dataplane.seen == []  # nothing was signed or sent

    # root, named in the list, passes, and the request is signed and accepted
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


def test_root_is_in_no_default(
    proxy_for: Callable[..., ThreadedProxy], bare_dataplane: DataPlane
) -> None:
    """Settings without a list mean the packaged Prometheus and Grafana users: a root-run
    forwarder (SSM port forwarding, a host-network container) is refused."""
    proxy = proxy_for()  # allowed_uids absent
    expected = peers.uids_of([PROCESS_USERS["prometheus"], PROCESS_USERS["grafana"]])
    assert resolve_allowed(None) == frozenset(expected.values())
    assert proxy.server is not None and proxy.server.gate is not None
    allowed = proxy.server.gate.allowed
    assert allowed is not None and 0 not in allowed
    refused = client_call("127.0.0.1", _port(proxy), None)
    assert refused["status"] == 403
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "uid"}) == 1
    assert bare_dataplane.seen == []


def test_uids_of() -> None:
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


LOOKUPS: dict[str, Callable[[tuple[str, int], tuple[str, int]], int | None]] = {
    "sock_diag": sockdiag.connection_owner,
    "proc_scan": peers.socket_owner,
}


@pytest.mark.parametrize("lookup", sorted(LOOKUPS))
@pytest.mark.parametrize(
    ("listen", "connect"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("::", "127.0.0.1")],
    ids=["ipv4", "ipv6", "ipv4-on-a-dual-stack-listener"],
)
def test_socket_owner_finds_the_uid_of_the_peer(listen: str, connect: str, lookup: str) -> None:
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
                _check_owner(server, holder, LOOKUPS[lookup])
            finally:
                if holder.poll() is None:
                    holder.kill()


def _check_owner(
    server: socket.socket,
    holder: subprocess.Popen[str],
    owner: Callable[[tuple[str, int], tuple[str, int]], int | None],
) -> None:
    assert holder.stdout is not None and holder.stdin is not None
    client_port = int(holder.stdout.readline())
    conn, peer = server.accept()
    with conn:
        own = conn.getsockname()
        assert peer[1] == client_port
        assert owner(peer[:2], own[:2]) == NOBODY
        # our own end of the connection is root's, seen the other way round
        assert owner(own[:2], peer[:2]) == os.getuid()
        # a port nobody connects from: no such socket (and not the listener's owner)
        assert owner((peer[0], 1), own[:2]) is None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        # gone (or orphaned, which the kernel shows as uid 0): nobody vouches for it
        wait_for(
            lambda: owner(peer[:2], own[:2]) is None,
            5,
            0.01,
            "a closed socket to have no owner",
            retry_on=(),
        )


LISTENER = textwrap.dedent(
    """
    import socket, sys
    family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    s = socket.socket(family)
    s.bind((sys.argv[1], 0))
    s.listen()
    print(s.getsockname()[1], flush=True)
    sys.stdin.readline()
    """
)


@pytest.mark.parametrize(
    ("bind", "ask"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1")],
)
def test_listener_owner(bind: str, ask: str) -> None:
    """Who accepts connections to host:port: nobody's listener, then nothing once gone."""
    with subprocess.Popen(
        [CHILD_PYTHON, "-I", "-c", LISTENER, bind],
        preexec_fn=_as(NOBODY),  # noqa: PLW1509 -- the child only runs LISTENER
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        port = int(holder.stdout.readline())
        assert sockdiag.listener_owner(ask, port) == NOBODY
        # a root listener bound to the exact address beats the wildcard one
        if bind in ("0.0.0.0", "::"):
            with socket.socket(socket.AF_INET) as exact:
                exact.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    exact.bind(("127.0.0.1", port))
                except OSError:
                    pass  # the kernel refused the overlap: nothing more to compare
                else:
                    exact.listen()
                    assert sockdiag.listener_owner("127.0.0.1", port) == os.getuid()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
    assert sockdiag.listener_owner(ask, port) is None


def test_peer_owner_falls_back_to_the_table_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where netlink is filtered (seccomp, RestrictAddressFamilies=), the scan answers."""

    def unavailable(a: tuple[str, int], b: tuple[str, int]) -> int | None:
        raise sockdiag.SockDiagUnavailable(97, "sock_diag unavailable: filtered")

    monkeypatch.setattr(sockdiag, "connection_owner", unavailable)
    monkeypatch.setattr(peers._Netlink, "usable", True)
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        conn, peer = server.accept()
        with conn:
            assert peers.peer_owner(peer, conn.getsockname()) == os.getuid()
            assert peers._Netlink.usable is False  # asked once, then the scan only
            assert peers.peer_owner(client.getsockname(), peer) is None


def test_socket_owner_without_proc_tables(tmp_path: Any) -> None:
    with pytest.raises(peers.PeerLookupError):
        peers.socket_owner(("127.0.0.1", 1), ("127.0.0.1", 2), proc_net=tmp_path)


# -- the gate's decisions, with the lookup passed in -----------------------------------


class _Transport:
    def __init__(self, peer: tuple[str, int], own: tuple[str, int]) -> None:
        self.extra = {"peername": peer, "sockname": own}
        self.closing = False

    def get_extra_info(self, name: str) -> Any:
        return self.extra.get(name)

    def is_closing(self) -> bool:
        return self.closing


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
    verdict = asyncio.run(gate.check(transport))  # type: ignore[arg-type]
    assert (verdict.reason, verdict.uid) == (reason, owner)

    async def again() -> None:
        await gate.check(transport)  # type: ignore[arg-type]

    asyncio.run(again())
    assert len(calls) == 1  # decided once per connection


def test_gate_looks_up_off_the_event_loop() -> None:
    """The lookup is a syscall or a file read: it runs in a worker thread, so a slow one
    delays only the connection it is about."""
    threads: list[threading.Thread] = []

    def lookup(a: tuple[str, int], b: tuple[str, int]) -> int | None:
        threads.append(threading.current_thread())
        return 0

    async def check() -> threading.Thread:
        gate = PeerGate({0}, owner=lookup)
        transport = _Transport(("127.0.0.1", 40000), ("127.0.0.1", 8005))
        assert (await gate.check(transport)).reason is None  # type: ignore[arg-type]
        return threading.current_thread()

    loop_thread = asyncio.run(check())
    assert threads and threads[0] is not loop_thread


def test_a_connection_gone_before_its_turn_is_not_looked_up() -> None:
    """A flood of connections that give up leaves no queue of lookups behind it."""
    calls: list[object] = []

    def lookup(a: tuple[str, int], b: tuple[str, int]) -> int | None:
        calls.append(a)
        return 0

    gate = PeerGate({0}, owner=lookup)
    transport = _Transport(("127.0.0.1", 40000), ("127.0.0.1", 8005))
    transport.closing = True
    verdict = asyncio.run(gate.check(transport))  # type: ignore[arg-type]
    assert (verdict.reason, calls) == ("peer_unknown", [])


def test_gate_fails_closed_when_the_tables_cannot_be_read() -> None:
    def broken(a: tuple[str, int], b: tuple[str, int]) -> int | None:
        raise peers.PeerLookupError(2, "no /proc")

    gate = PeerGate({0}, owner=broken)
    transport = _Transport(("127.0.0.1", 1), ("127.0.0.1", 2))
    verdict = asyncio.run(gate.check(transport))  # type: ignore[arg-type]
    assert verdict.reason == "peer_unknown"
    assert asyncio.run(gate.check(None)).reason == "peer_unknown"


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


def test_refusals_are_counted_each_but_logged_once_a_minute(
    proxy_for: Callable[..., ThreadedProxy],
) -> None:
    """Another local user decides how often it is refused: every refusal is counted, but
    the log (the journal) gets one line per user and reason a minute."""
    with capture_logs() as logs:
        proxy = proxy_for(allowed_uids=(0,))
        for _ in range(3):
            assert client_call("127.0.0.1", _port(proxy), NOBODY)["status"] == 403
    assert proxy.metric("ampd_proxy_refused_total", {"reason": "uid"}) == 3
    lines = [e for e in logs if e["event"] == "proxy.request" and e.get("reason") == "uid"]
    assert len(lines) == 1
    assert lines[0]["uid"] == NOBODY and lines[0]["suppressed"] == 0
