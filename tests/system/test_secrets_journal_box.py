"""No secret reaches the journal: the real ``ampd.service`` under a real systemd (the box of
tests/harness/sysbox.py), logging natively to journald at debug level, takes its
credentials from an IMDS stand-in (tokens and role keys recorded as they are issued) and
provisions a Grafana admin password; then everything journald holds, of every unit, is
searched for each of them.

The secrets are really used, which is what makes their absence mean something: ampd's
IMDS client and botocore's both ask the stand-in with its tokens, botocore signs AWS
calls with the role's keys (the box has no network, so they go no further), and the
admin password is the one ampd wrote for Grafana.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ampd.gateways.grafana import admin_password_file
from tests.harness.fixtures_systemd import VENV_PYTHON
from tests.harness.sysbox import SysBox
from tests.harness.wait import wait_for

pytestmark = [pytest.mark.systemd, pytest.mark.slow]

PASSWORD = admin_password_file(Path("/var/lib/ampd"))
IMDS_PORT = 9177
ISSUED = "/run/imds-issued.jsonl"
# An IMDS stand-in that writes down every secret it hands out.
IMDS = f"""
import json, sys, threading
from tests.harness.imds import ImdsServer

class Recording(ImdsServer):
    def _issue_token(self, ttl):
        token = super()._issue_token(ttl)
        with open({ISSUED!r}, "a") as f:
            f.write(json.dumps({{"imds token": token}}) + "\\n")
        return token

server = Recording(port={IMDS_PORT}, role="ampd-writer")
creds = server.credentials
with open({ISSUED!r}, "a") as f:
    f.write(json.dumps({{"role secret key": creds.secret_access_key,
                         "role session token": creds.token}}) + "\\n")
server.start()
threading.Event().wait()
"""
STATE = """\
version: 1
stack: boxcanary
aws:
  region: eu-west-1
workspace:
  alias: canary
prometheus:
  instance_labels: [instance_id, region]
grafana:
  enabled: true
"""


def _issued(box: SysBox) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(box.read_file(ISSUED).splitlines()):
        for what, value in json.loads(line).items():
            out[f"{what} #{n}"] = value
    return out


def test_the_journal_holds_no_secret(ampd_box: SysBox) -> None:
    box = ampd_box
    box.write_file("/run/imds-standin.py", IMDS)
    box.run(
        "systemd-run", "--unit=imds-standin", "--property=WorkingDirectory=/opt/ampd-src",
        VENV_PYTHON, "/run/imds-standin.py",
    ).check()  # fmt: skip
    wait_for(lambda: box.path(ISSUED).exists(), 30, what="the IMDS stand-in")
    box.write_file(
        "/etc/default/ampd",
        f"AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:{IMDS_PORT}/\n",
    )
    box.write_file(
        "/etc/systemd/system/ampd.service.d/debug.conf",
        "[Service]\nExecStart=\nExecStart=/usr/bin/ampd --log-level debug run\n",
    )
    box.write_file("/etc/ampd/state.yml", STATE, mode=0o640)
    box.run("chgrp", "ampd", "/etc/ampd/state.yml").check()
    box.run("systemctl", "daemon-reload").check()
    box.run("systemctl", "start", "ampd.service", timeout=90).check()

    def used() -> dict[str, str] | None:
        """Every kind of secret handed out and used: IMDS tokens (ampd's own client and
        botocore's), role keys (botocore signs with them), the admin password."""
        issued = _issued(box)
        tokens = [k for k in issued if k.startswith("imds token")]
        password = box.path(str(PASSWORD))
        signed = "GetCallerIdentity" in box.journal("ampd.service", lines=400)
        if len(tokens) < 2 or not password.exists() or not signed:
            return None
        return issued

    def why() -> str:
        shown = box.journal("ampd.service", lines=60)
        return f"issued: {sorted(_issued(box))}\n{shown}\n{box.journal('imds-standin')}"

    secrets = wait_for(
        used, 60, detail=why, what="IMDS tokens, role keys and the admin password in use"
    )
    password = box.read_file(str(PASSWORD)).strip()
    secrets["grafana admin password"] = password
    secrets["grafana admin basic auth"] = base64.b64encode(f"admin:{password}".encode()).decode()
    box.run("systemctl", "stop", "ampd.service", timeout=60).check()

    journal = box.run("journalctl", "--no-pager", "-o", "export").check().stdout
    entries = box.run("journalctl", "--no-pager", "-o", "json", "-u", "ampd.service").check()
    events: list[dict[str, Any]] = [json.loads(x) for x in entries.stdout.splitlines() if x]
    ampd_events = [e for e in events if e.get("AMPD_EVENT")]
    assert len(ampd_events) > 10, "ampd logged natively to the journal"
    assert any(e.get("PRIORITY") == "7" for e in ampd_events), "at debug level"
    leaks = [what for what, value in secrets.items() if value in journal]
    assert leaks == [], f"in the journal: {leaks}"
    print(f"\njournal: {len(journal)} bytes, {len(ampd_events)} ampd entries, {len(secrets)} "
          "secrets searched, 0 found")  # fmt: skip
