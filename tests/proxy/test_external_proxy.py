"""``proxy.implementation: aws-sigv4-proxy`` runs that binary instead of the built-in
proxy: pinned upstream host, loopback listen address, http upstream scheme when needed;
health from its port (it has no health URL of its own)."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

from tests.harness.execdir import trusted_dir
from tests.harness.fixtures_aws import DATA_PLANE_URL, REGION, AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.wait import wait_for

# A stand-in for aws-sigv4-proxy: records its argv, listens where --port says.
STANDIN = """\
import http.server, json, sys
args = sys.argv[1:]
open(sys.argv[0] + ".argv.json", "w").write(json.dumps(args))
host, _, port = args[args.index("--port") + 1].rpartition(":")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(502); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((host, int(port)), H).serve_forever()
"""


def standin(tmp: Path) -> tuple[Path, Path]:
    """(the script, the executable that runs it: where ampd runs binaries from)."""
    script = tmp / "aws-sigv4-proxy.py"
    script.write_text(STANDIN)
    binary = trusted_dir() / "aws-sigv4-proxy"
    binary.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return script, binary


def test_aws_sigv4_proxy_runs_instead_of_the_builtin(
    aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess, tmp_path: Path
) -> None:
    script, binary = standin(tmp_path)
    listen = f"127.0.0.1:{free_port()}"
    state: dict[str, Any] = {
        "version": 1,
        "aws": {"region": REGION, "data_plane_url": DATA_PLANE_URL},
        "workspace": {"alias": "external-proxy"},
        # signing: proxy (auto would let Debian 13's Prometheus 2.53 sign by itself)
        "prometheus": {
            "listen": f"127.0.0.1:{free_port()}",
            "scrape_interval": "1s",
            "remote_write": {"signing": "proxy"},
        },
        "proxy": {
            "listen": listen,
            "implementation": "aws-sigv4-proxy",
            "binary": str(binary),
        },
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "runtime": "supervisor",
    }
    ampd_proc.write_state(state)
    ampd_proc.start()
    res = wait_for(
        lambda: (
            (r := ampd_proc.resource("process", "sigv4-proxy")) and r["health"] == "Healthy" and r
        ),
        timeout=40,
        what="the external proxy Healthy",
    )
    assert res["sync"] == "Synced"
    argv = json.loads(Path(str(script) + ".argv.json").read_text())
    upstream_host = DATA_PLANE_URL.split("://", 1)[1].split("/", 1)[0]
    assert argv[argv.index("--port") + 1] == listen
    assert argv[argv.index("--host") + 1].startswith(upstream_host)
    assert argv[argv.index("--name") + 1] == "aps"
    assert argv[argv.index("--region") + 1] == REGION
    assert argv[argv.index("--upstream-url-scheme") + 1] == "http"
    generated = (ampd_proc.state_dir / "generated" / "prometheus.yml").read_text()
    assert f"http://{listen}/workspaces/" in generated
    # it checks no peer uid, and status says so (the built-in proxy would)
    cond = wait_for(
        lambda: ampd_proc.condition("ProxyPeerCheck"),
        timeout=20,
        what="the ProxyPeerCheck condition",
    )
    assert cond["status"] == "False" and cond["reason"] == "ThirdPartyProxy"
    assert "aws-sigv4-proxy" in cond["message"] and listen in cond["message"]
