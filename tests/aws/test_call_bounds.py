"""Every external call a pass makes is bounded below ampd.service's WatchdogSec= (#23):
a pass that makes progress is never killed, and one stuck in a call ends in a restart.

The systemctl calls go through the runtime's I/O seam (a recording runner); the other
bounds are the gateways' own timeouts, compared with the unit file ampd ships."""

from __future__ import annotations

import configparser
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from ampd.aws.gateway import base as aws_base
from ampd.core import Command
from ampd.engine import reconcile
from ampd.gateways import imds, promreload, statesource
from ampd.gateways.paths import Paths
from ampd.gateways.systemd import Completed, SystemdRuntime
from ampd.local.act import apply as local_act
from ampd.local.side import side as local_side

UNIT = Path(__file__).resolve().parents[2] / "units" / "ampd.service"


def watchdog_sec() -> float:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    value = parser["Service"]["WatchdogSec"]
    m = re.fullmatch(r"(\d+)s", value)
    assert m, f"WatchdogSec={value}: expected seconds"
    return float(m.group(1))


class Recorder:
    def __init__(self) -> None:
        self.timeouts: list[tuple[str, float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> Completed:
        self.timeouts.append((" ".join(argv[:4]), timeout))
        if "show" in argv:
            return Completed(0, "LoadState=loaded\nActiveState=active\nMainPID=7\n", "")
        return Completed(0, "", "")


def test_every_systemctl_call_is_bounded_below_the_watchdog(tmp_path: Path) -> None:
    rec = Recorder()
    rt = SystemdRuntime(Paths(tmp_path / "lib", tmp_path / "run"), run=rec)
    cmd = Command("prometheus", ("/usr/bin/prometheus",))
    rt.observe("prometheus")
    rt.start(cmd)
    rt.restart(cmd)
    rt.reload("prometheus")
    rt.stop("prometheus")
    rt.stop("prometheus", timeout=120.0)  # a caller asking for more still gets the bound
    limit = watchdog_sec()
    assert {what.split()[3] for what, _ in rec.timeouts} >= {"show", "start", "stop", "reload"}
    too_long = [(what, t) for what, t in rec.timeouts if t >= limit]
    assert not too_long, f"WatchdogSec={limit:.0f}: {too_long}"


@pytest.mark.parametrize(
    ("what", "seconds"),
    [
        ("AWS connect + read (one attempt)", aws_base.CONNECT_TIMEOUT + aws_base.READ_TIMEOUT),
        ("the pass' wait for the AWS side", reconcile.AWS_PASS_TIMEOUT),
        ("state source connect + read", statesource.CONNECT_TIMEOUT + statesource.READ_TIMEOUT),
        ("IMDS", imds.TIMEOUT),
        ("a reload's verdict", promreload.TIMEOUT + promreload.READ_TIMEOUT),
        ("the wait for a started Prometheus", local_act.START_WAIT),
        ("the remote-write queue drain", local_side.DRAIN_TIMEOUT),
    ],
)
def test_gateway_bounds_are_below_the_watchdog(what: str, seconds: float) -> None:
    assert seconds < watchdog_sec() / 2, f"{what}: {seconds} s"
