"""No secret leaks: the AWS secret key, the session token and a Grafana credential are set
to unique canary strings, ampd runs the whole stack at debug level (daemon, plan, status,
render, validate), and then every log line, status.json, command output, /metrics page and
every file ampd or its children wrote is searched for the canaries: none may appear.
So is every secret handed out along the way: each IMDS session token and role key the
IMDS stand-in issued, and the Grafana admin password ampd made (and its Basic auth form),
which may be only in its own file.

The canaries are really used, which is what makes their absence mean something: remote
write is signed with the canary keys (the data plane accepts them), Grafana's data source
is pointed at the canary credentials file, ampd asked IMDS for its instance labels, and
Grafana runs with the admin password. The journal is searched by
tests/system/test_secrets_journal_box.py, under a real systemd.
"""

from __future__ import annotations

import base64
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ampd.gateways.grafana import admin_password_file
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.stack import Stack
from tests.harness.wait import wait_for
from tests.local.test_grafana_daemon import standin_binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.prometheus,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]

ACCESS_KEY = "AKIACANARY" + secrets.token_hex(5).upper()
CANARIES = {
    "AWS_SECRET_ACCESS_KEY": "canary-secret-" + secrets.token_hex(12),
    "AWS_SESSION_TOKEN": "canary-token-" + secrets.token_hex(12),
    "grafana credential": "canary-grafana-" + secrets.token_hex(12),
}


class DebugAmpd(AmpdProcess):
    """``ampd --log-level debug run``: the most a log can say."""

    log_level = "debug"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    st = Stack(tmp_path / "stack")
    st.ampd = DebugAmpd(st.workdir)
    with st:
        st.static_keys[ACCESS_KEY] = CANARIES["AWS_SECRET_ACCESS_KEY"]
        st.ampd.extra_env.update(
            {
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": CANARIES["AWS_SECRET_ACCESS_KEY"],
                "AWS_SESSION_TOKEN": CANARIES["AWS_SESSION_TOKEN"],
            }
        )
        yield st
        st.ampd.print_log_tail()


def grafana_section(tmp: Path, creds: Path) -> dict[str, Any]:
    return {
        "enabled": True,
        "binary": standin_binary(tmp, "12.0.2"),
        "listen": f"127.0.0.1:{free_port()}",
        "datasource": {"name": "AMP", "auth": "keys", "credentials_file": str(creds)},
        "dashboards": [],
    }


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode(errors="replace"))


def test_no_canary_anywhere(stack: Stack, tmp_path: Path) -> None:
    creds = tmp_path / "grafana-credentials"
    creds.write_text(
        "[default]\n"
        f"aws_access_key_id = AKIAGRAFANA{secrets.token_hex(4).upper()}\n"
        f"aws_secret_access_key = {CANARIES['grafana credential']}\n"
    )
    creds.chmod(0o640)
    state = stack.state(grafana=grafana_section(tmp_path, creds))
    stack.ampd.write_state(state)
    stack.ampd.start()

    # the canary keys are in use: remote write signed with them is accepted
    wait_for(
        lambda: (c := stack.ampd.condition("RemoteWriteFlowing")) and c["status"] == "True",
        120,
        what="RemoteWriteFlowing=True",
    )
    assert stack.dataplane is not None
    assert ACCESS_KEY in stack.dataplane.accepted_key_ids
    wait_for(
        lambda: (r := stack.ampd.resource("process", "grafana")) and r["health"] == "Healthy",
        60,
        what="grafana healthy",
    )

    outputs: dict[str, str] = {}
    debug = ("--log-level", "debug")
    for args in (
        ("plan",),
        ("plan", "--json"),
        ("status",),
        ("status", "--json"),
        ("render", "--out", str(tmp_path / "rendered")),
        ("validate",),
        ("version",),
    ):
        res = stack.ampd.ampd(*debug, *args)
        assert res.returncode in (0, 1, 2, 3), res.stderr
        outputs[f"ampd {' '.join(args)}"] = res.stdout + res.stderr
    assert outputs["ampd status --json"].lstrip().startswith("{")
    assert (tmp_path / "rendered").is_dir()

    metrics_listen = state["metrics"]["listen"]
    outputs["ampd /metrics"] = fetch(f"http://{metrics_listen}/metrics")
    assert "ampd_" in outputs["ampd /metrics"]
    outputs["prometheus /metrics"] = fetch(f"http://{state['prometheus']['listen']}/metrics")
    outputs["proxy /metrics"] = fetch(f"http://{state['proxy']['listen']}/metrics")
    stack.ampd.stop()  # flush and close everything it writes

    handed_out = stack.imds.handed_out()
    assert any(k.startswith("imds token") for k in handed_out), "ampd asked IMDS"
    password_file = admin_password_file(stack.ampd.state_dir)
    password = password_file.read_text().strip()
    basic = base64.b64encode(f"admin:{password}".encode()).decode()
    secret = {**CANARIES, **handed_out, "grafana admin password": password, "its basic": basic}

    files = [
        p
        for root in (stack.workdir, tmp_path / "rendered")
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    ]
    assert stack.ampd.log_path in files
    assert any(p.name == "status.json" for p in files)
    assert len(files) > 10
    for name, text in outputs.items():
        for what, canary in secret.items():
            assert canary not in text, f"{what} in the output of {name}"
            assert canary[:20] not in text, f"the start of {what} in the output of {name}"
    leaks = [
        (str(p), what)
        for p in files
        for what, canary in secret.items()
        if canary.encode() in p.read_bytes() and p != password_file
    ]
    assert leaks == []
    debug_lines = stack.ampd.log_path.read_text().count('"level": "debug"')
    print(
        f"\ncanaries: {len(files)} files and {len(outputs)} outputs searched for {len(secret)}"
        " secrets, 0 found;"
        f" {debug_lines} debug log lines"
    )
    # the search itself works: the credentials file does hold its canary
    assert CANARIES["grafana credential"].encode() in creds.read_bytes()
