"""ampd trusts a loopback server only after checking who owns its socket, and its loopback
and instance-metadata requests never go through ``*_proxy``.

The squatter is a real process running as ``nobody`` (tests/harness/squatter.py) that
answers ``200 ok`` to anything; the tests run as root, so ampd's own servers here are uid 0.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator

import pytest
from botocore.utils import InstanceMetadataFetcher

from ampd import cli
from ampd.errors import TemporaryError
from ampd.gateways import grafana, imds, promqueue, promreload, sockdiag
from ampd.gateways.http import owned_get, request, tcp_check
from ampd.gateways.listeners import connection_owner, listener_owner, parse_table
from ampd.local.observe.processes import probe_health, scrape
from tests.harness.fixtures_local import free_port
from tests.harness.imds import ImdsServer
from tests.harness.squatter import Squatter

ME = os.geteuid()


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def _answer(self) -> None:
        type(self).seen.append(f"{self.command} {self.path} {dict(self.headers)}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *_args: object) -> None:
        pass


def _server(host: str = "127.0.0.1") -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    srv = http.server.ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, seen


@pytest.fixture
def own_server() -> Iterator[tuple[str, list[str]]]:
    srv, seen = _server()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(params=["sock_diag", "table"])
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways to find a listener's owner: netlink, and the /proc table where netlink
    is not allowed (ampd.service has no AF_NETLINK)."""
    if request.param == "table":

        def unavailable(_host: str, _port: int) -> int | None:
            raise sockdiag.SockDiagUnavailable(97, "not here")

        monkeypatch.setattr(sockdiag, "listener_owner", unavailable)
    return str(request.param)


@pytest.fixture
def squatter() -> Iterator[Squatter]:
    with Squatter("127.0.0.1", free_port()) as s:
        s.wait_bound(10)
        yield s


# -- the socket table -----------------------------------------------------------------------


def test_the_table_parser_reads_both_families() -> None:
    text = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998"
        "        0 4242 1\n"
    )
    [row] = parse_table(text)
    assert (str(row.local), row.local_port, row.state, row.uid, row.inode) == (
        "127.0.0.1",
        8080,
        "0A",
        998,
        4242,
    )
    v6 = (
        "  sl  local_address                         remote_address   st\n"
        "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     7        0 99 1\n"
    )
    [row6] = parse_table(v6)
    assert (str(row6.local), row6.uid) == ("::1", 7)


def test_listener_owner_names_the_user_that_bound_the_port(squatter: Squatter, lookup: str) -> None:
    assert listener_owner("127.0.0.1", squatter.port) == squatter.uid
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        assert listener_owner("127.0.0.1", mine.getsockname()[1]) == ME
    assert listener_owner("127.0.0.1", free_port()) is None


def test_a_wildcard_listener_covers_loopback(lookup: str) -> None:
    port = free_port()
    with Squatter("0.0.0.0", port) as s:
        s.wait_bound(10)
        assert listener_owner("127.0.0.1", port) == s.uid
        assert listener_owner("0.0.0.0", port) == s.uid
        res = request(f"http://127.0.0.1:{port}/-/ready", owner=ME)
        assert res.foreign_uid == s.uid
    port6 = free_port()
    with Squatter("::", port6) as s6:
        s6.wait_bound(10)
        assert listener_owner("127.0.0.1", port6) == s6.uid  # dual-stack ``::``
        assert listener_owner("::1", port6) == s6.uid


def test_connection_owner_is_the_server_that_accepted(squatter: Squatter) -> None:
    with socket.create_connection(("127.0.0.1", squatter.port)) as c:
        assert connection_owner(c.getsockname(), c.getpeername()) == squatter.uid


# -- the request helper -----------------------------------------------------------------------


def test_an_owner_checked_request_reaches_its_own_server(own_server: tuple[str, list[str]]) -> None:
    listen, seen = own_server
    res = request(f"http://{listen}/x", owner=ME, headers={"Authorization": "Basic c2VjcmV0"})
    assert (res.status, res.body, res.foreign_uid) == (200, "ok", None)
    assert len(seen) == 1


def test_a_squatter_gets_nothing_not_even_a_connection(squatter: Squatter, lookup: str) -> None:
    res = request(
        f"http://127.0.0.1:{squatter.port}/api/health",
        "POST",
        data=b"x",
        owner=ME,
        headers={"Authorization": "Basic YWRtaW46c2VjcmV0"},
    )
    assert res.status == 0
    assert res.foreign_uid == squatter.uid
    assert f"uid {squatter.uid}" in res.body
    tcp = tcp_check(f"127.0.0.1:{squatter.port}", owner=ME)
    assert (tcp.ok, tcp.foreign_uid) == (False, squatter.uid)
    # Without an owner the same squatter would be believed (what the check prevents):
    assert request(f"http://127.0.0.1:{squatter.port}/probe").status == 200
    squatter.stop()
    assert squatter.connections == 1  # only the unchecked one above
    assert b"Authorization" not in b"".join(squatter.received)


def test_probes_and_scrapes_do_not_believe_a_squatter(squatter: Squatter) -> None:
    listen = f"127.0.0.1:{squatter.port}"
    for name in ("prometheus", "sigv4-proxy", "grafana"):
        p = probe_health(name, listen, owner=ME)
        assert (p.ok, p.foreign_uid) == (False, squatter.uid)
    p = probe_health("sigv4-proxy", listen, tcp_only=True, owner=ME)
    assert (p.ok, p.foreign_uid) == (False, squatter.uid)
    assert scrape(listen, owner=ME) is None
    squatter.stop()
    assert squatter.connections == 0


def test_grafana_admin_auth_never_reaches_a_squatter(
    squatter: Squatter, own_server: tuple[str, list[str]]
) -> None:
    with pytest.raises(TemporaryError, match=f"uid {squatter.uid}"):
        grafana.reload_provisioning(
            f"127.0.0.1:{squatter.port}", "datasources", "hunter2-admin", owner=ME
        )
    listen, seen = own_server
    assert grafana.reload_provisioning(listen, "dashboards", "hunter2-admin", owner=ME) == 200
    assert "Authorization" in seen[0]  # the real Grafana does get it
    squatter.stop()
    assert squatter.connections == 0


# -- *_proxy ----------------------------------------------------------------------------------


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every proxy variable points at a recording server, which must see nothing."""
    srv, seen = _server()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.setenv(var, url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    try:
        yield seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_loopback_requests_ignore_http_proxy(
    proxy_env: list[str], own_server: tuple[str, list[str]]
) -> None:
    listen, seen = own_server
    assert request(f"http://{listen}/metrics").status == 200
    assert request(f"http://{listen}/metrics", owner=ME).status == 200
    assert grafana.reload_provisioning(listen, "datasources", "pw", owner=ME) == 200
    assert len(seen) == 3
    assert proxy_env == []


def test_imds_requests_ignore_http_proxy(proxy_env: list[str]) -> None:
    with ImdsServer() as md:
        info = imds.fetch_instance_info(md.endpoint)
    assert info.instance_id is not None
    assert proxy_env == []


def test_botocore_imds_credentials_are_kept_off_http_proxy(
    proxy_env: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's own IMDS client (the instance role's credentials) takes its proxies from
    the environment: seen here first. ``ampd`` adds IMDS and loopback to ``no_proxy`` at
    start (ampd.cli), after which the proxy sees nothing."""
    with ImdsServer() as md:
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", md.endpoint)
        config = {"ec2_metadata_service_endpoint": md.endpoint}

        def fetch() -> str | None:
            creds = InstanceMetadataFetcher(
                timeout=2, num_attempts=1, config=config
            ).retrieve_iam_role_credentials()
            return str(creds["access_key"]) if creds else None

        fetch()
        assert proxy_env, "botocore no longer uses *_proxy for IMDS: this test is stale"
        proxy_env.clear()
        cli.prepare_environment()
        assert fetch() == md.credentials.access_key_id
    assert proxy_env == []
    assert "169.254.169.254" in os.environ["no_proxy"].split(",")


def test_an_owner_checked_request_follows_no_redirect(squatter: Squatter) -> None:
    """A redirect could lead past the check (to another port, or to https): the 3xx is
    the answer."""
    target = f"http://127.0.0.1:{squatter.port}/steal"

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res = request(f"http://127.0.0.1:{srv.server_address[1]}/", owner=ME)
    finally:
        srv.shutdown()
        srv.server_close()
    assert res.status == 302
    assert request("https://127.0.0.1:1/", owner=ME).status == 0  # no https with an owner
    squatter.stop()
    assert squatter.connections == 0


def test_owned_get_is_the_fetch_for_prometheus_readers(
    squatter: Squatter, own_server: tuple[str, list[str]]
) -> None:
    """promqueue and promreload take a ``fetch``: owned_get makes theirs owner-checked."""
    listen, seen = own_server
    assert owned_get(ME)(f"http://{listen}/metrics").status == 200
    assert promqueue.read_queues(f"127.0.0.1:{squatter.port}", owned_get(ME)) is None
    assert promreload.read_reload_state(f"127.0.0.1:{squatter.port}", owned_get(ME)) is None
    squatter.stop()
    assert squatter.connections == 0
    assert len(seen) == 1
