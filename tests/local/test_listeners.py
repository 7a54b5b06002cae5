"""Every socket ampd's process tree listens on is on loopback, as ``ss`` sees it.

One daemon runs everything it can start: a real Prometheus, the signing proxy, its own
metrics listener and Grafana (the stand-in of tests/harness/grafana_standin.py). The
kernel's view (``ss -Hltnp``, iproute2) is the judge, not the configuration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures_aws import DATA_PLANE_URL, REGION, AwsEnv
from tests.harness.fixtures_local import AmpdProcess, free_port
from tests.harness.wait import wait_for
from tests.local.test_grafana_daemon import standin_binary

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="needs prometheus"),
]

LOOPBACK = {"127.0.0.1", "::1", "[::1]"}
_PID_RE = re.compile(r"pid=(\d+)")


def process_tree(root: int) -> set[int]:
    """``root`` and every descendant (by parent pid in /proc/*/stat)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        parents[int(d.name)] = int(stat.rpartition(")")[2].split()[1])
    tree = {root}
    for _ in range(64):  # depth bound; the tree is 3 deep
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        if not more:
            break
        tree |= more
    return tree


def listening() -> list[tuple[str, int, set[int]]]:
    """(address, port, owning pids) of every listening TCP socket on the host."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    sockets = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3]
        host, _, port = local.rpartition(":")
        host = host.split("%")[0]  # an interface suffix: 127.0.0.1%lo
        sockets.append((host, int(port), {int(p) for p in _PID_RE.findall(line)}))
    return sockets


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_every_listener_of_the_process_tree_is_on_loopback(
    aws_emulator_env: AwsEnv, ampd_proc: AmpdProcess, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("prometheus", "proxy", "metrics", "grafana")}
    state: dict[str, Any] = {
        "version": 1,
        "stack": "listeners",
        "aws": {"region": REGION, "data_plane_url": DATA_PLANE_URL},
        "workspace": {"alias": "listeners"},
        "prometheus": {
            "listen": f"127.0.0.1:{ports['prometheus']}",
            "scrape_configs": [{"job": "app", "targets": ["127.0.0.1:1"]}],
            "remote_write": {"signing": "proxy"},
        },
        "proxy": {"enabled": True, "listen": f"127.0.0.1:{ports['proxy']}"},
        "metrics": {"listen": f"127.0.0.1:{ports['metrics']}"},
        "grafana": {
            "enabled": True,
            "binary": standin_binary(tmp_path, "12.0.2"),
            "listen": f"127.0.0.1:{ports['grafana']}",
        },
        "runtime": "supervisor",
    }
    ampd_proc.write_state(state)
    ampd_proc.start()
    ampd_proc.wait_healthy(timeout=90)
    assert ampd_proc.proc is not None
    root = ampd_proc.proc.pid

    def ours() -> list[tuple[str, int, set[int]]] | None:
        tree = process_tree(root)
        mine = [s for s in listening() if s[2] & tree]
        return mine if set(ports.values()) <= {s[1] for s in mine} else None

    mine = wait_for(ours, 60, what="every expected listener in ampd's tree")
    wide = [(h, p) for h, p, _ in mine if h not in LOOPBACK]
    assert wide == [], f"listening beyond loopback: {wide} (all: {mine})"
    # the four asked for, and nothing the state file did not ask for
    extra = {p for _, p, _ in mine} - set(ports.values())
    print(f"listeners of ampd's tree: {sorted((h, p) for h, p, _ in mine)}; extra {extra}")
