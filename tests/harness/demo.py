"""ampd's main job on an embedded default: everything on 127.0.0.1, nothing reaches AWS.

Brings up the AWS emulator, the IMDS stand-in, the SigV4-verifying data plane (backed by
a real Prometheus receiver) and a sample app; runs ``ampd run`` on
config/state.example.yml adapted to them; waits for the app's samples to arrive through
the signed path; prints ``ampd status`` and a signed query; runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.harness.stack import Stack
from tests.harness.wait import wait_for


def say(text: str) -> None:
    print(text, flush=True)


DEMO_QUERY_KEY = ("AKIDAMPDDEMOQUERY001", "demo-query-secret")  # what a Grafana would hold


def signed_query(st: Stack, expr: str) -> Any:
    """A PromQL query through the signed path: through ampd's proxy when it runs one, or,
    when Prometheus signs remote_write itself (Debian 13's 2.53) and no proxy is needed,
    signed here with SigV4 as Grafana's data source signs it."""
    assert st.dataplane is not None
    ws = (st.ampd.status() or {})["workspace"]["id"]
    query = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    proxy_json = st.ampd.state_dir / "generated" / "proxy.json"
    if proxy_json.exists():
        proxy = json.loads(proxy_json.read_text())["listen"]
        with urllib.request.urlopen(f"http://{proxy}/workspaces/{ws}{query}", timeout=10) as r:
            return json.loads(r.read())
    akid, secret = DEMO_QUERY_KEY
    st.static_keys[akid] = secret
    request = AWSRequest(method="GET", url=f"{st.dataplane.url}/workspaces/{ws}{query}")
    SigV4Auth(Credentials(akid, secret), "aps", st.dataplane.region).add_auth(request)
    prepared = request.prepare()
    req = urllib.request.Request(prepared.url, headers=dict(prepared.headers.items()))
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def query_path(st: Stack) -> str:
    if (st.ampd.state_dir / "generated" / "proxy.json").exists():
        return "curl 'http://<proxy>/workspaces/<id>/api/v1/query?query=ampd_demo_requests_total'"
    return (
        "GET <data plane>/workspaces/<id>/api/v1/query?query=ampd_demo_requests_total"
        "  (SigV4-signed, as Grafana signs it; Prometheus signs its own writes here)"
    )


def flowing(st: Stack) -> bool:
    c = st.ampd.condition("RemoteWriteFlowing")
    return c is not None and c["status"] == "True"


def status_command(st: Stack) -> str:
    """``ampd status`` as typed in another terminal: the virtualenv's ampd, this demo's
    state file and directories (a plain ``ampd status`` reads /run/ampd)."""
    ampd = Path(sys.executable).parent / "ampd"
    env = f"RUNTIME_DIRECTORY={shlex.quote(str(st.ampd.runtime_dir))} " + (
        f"STATE_DIRECTORY={shlex.quote(str(st.ampd.state_dir))}"
    )
    return f"{env} " + shlex.join([str(ampd), "--state", str(st.ampd.state_file), "status"])


def run_printed(command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as a user would paste it: a shell with a plain environment."""
    return subprocess.run(
        ["/bin/sh", "-c", command],
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status_line(st: Stack) -> str:
    doc = st.ampd.status() or {}
    assert st.dataplane is not None
    return (
        f"{time.strftime('%H:%M:%S')}  {doc.get('line', 'no status yet')}  ·  "
        f"{st.dataplane.accepted} signed writes accepted"
    )


def live_status(st: Stack, stop: threading.Event, every: float = 3.0) -> None:
    """One status line, rewritten in place every few seconds (a line each on a pipe)."""
    tty = sys.stdout.isatty()
    # Ctrl-C ends the loop (also where SIGINT came in ignored: a shell's `demo &`)
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while True:
        line = status_line(st)
        print(f"\r\033[K{line}" if tty else line, end="" if tty else "\n", flush=True)
        if stop.wait(every):
            break
        assert st.ampd.proc is not None
        if (code := st.ampd.proc.poll()) is not None:
            say(("\n" if tty else "") + f"ampd exited with {code}; its log: {st.ampd.log_path}")
            return
    if tty:
        print()


DEMO_CREATION_DELAY = 20.0  # seconds a new workspace stays CREATING in the demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit once metrics arrive")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="ampd-demo-") as d, Stack(Path(d)) as st:
        assert st.dataplane is not None
        say(f"AWS emulator      {st.aws.endpoint}")
        say(f"IMDSv2 stand-in   {st.imds.endpoint}")
        say(f"AMP data plane    {st.dataplane.url}  (verifies SigV4, stores in {st.receiver.url})")
        say(f"sample app        {st.app.metrics_url}")
        # as real AMP: a new workspace stays CREATING for a while (a minute or more there)
        st.aws.creation_delay(DEMO_CREATION_DELAY)
        say(f"new workspaces    CREATING for {DEMO_CREATION_DELAY:.0f} s, then ACTIVE")
        st.ampd.write_state(st.state(signing="auto"))
        say(f"state file        {st.ampd.state_file}")
        say(f"ampd log          {st.ampd.log_path}")
        say("")
        say("--- state.yml (config/state.example.yml, pointed at the stand-ins) ---")
        say(yaml.safe_dump(st.state(signing="auto"), sort_keys=False).rstrip())
        say("")
        st.ampd.start()
        say("ampd run started; waiting for samples to arrive in the workspace ...")
        try:
            wait_for(lambda: flowing(st), 120, what="RemoteWriteFlowing=True")
            res = wait_for(
                lambda: signed_query(st, "ampd_demo_requests_total")["data"]["result"],
                60,
                what="the app's series through the signed query path",
            )
        except AssertionError as e:
            say(f"demo failed: {e}")
            say(st.ampd.ampd("status").stdout)
            say(st.ampd.log_path.read_text()[-3000:])
            return 1
        say("")
        say("$ ampd status   # AWS is still creating the workspace; what hangs off it waits")
        say(st.ampd.ampd("status").stdout.rstrip())
        try:
            wait_for(
                lambda: (
                    (r := st.ampd.resource("aws.workspace", "demo")) and r["health"] == "Healthy"
                ),
                DEMO_CREATION_DELAY + 60,
                what="the workspace ACTIVE",
            )
            wait_for(lambda: st.aws.calls("CreateRuleGroupsNamespace") > 0, 60, what="rules")
        except AssertionError as e:
            say(f"demo failed: {e}")
            say(st.ampd.log_path.read_text()[-3000:])
            return 1
        say("")
        say("$ ampd status   # the workspace is ACTIVE: what hangs off it is written")
        say(st.ampd.ampd("status").stdout.rstrip())
        say("")
        say(f"$ {query_path(st)}")
        for series in res:
            say(f"  {json.dumps(series['metric'], sort_keys=True)} = {series['value'][1]}")
        say("")
        say(
            f"The data plane accepted {st.dataplane.accepted} signed requests and rejected "
            f"{sum(st.dataplane.rejected.values())}."
        )
        command = status_command(st)
        say("")
        say("In another terminal, this shows what the running ampd sees (add --json for all):")
        say(f"  {command}")
        checked = run_printed(command)
        # 0/2/3: it read the running daemon's status (synced, progressing, degraded);
        # 1 would be "not running" (the wrong directories) or an error
        if checked.returncode == 1 or str(st.ampd.state_file) not in checked.stdout:
            say(f"demo failed: the command above exited {checked.returncode}:")
            say(checked.stdout + checked.stderr)
            return 1
        if args.check:
            say(f"(checked: the command above works as printed, exit {checked.returncode})")
            return 0
        say(f"Edit {st.ampd.state_file} and watch it change. Ctrl-C stops everything.")
        say("")
        live_status(st, stop)
        say("stopping ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
