"""The IMDS fence (issue #23): which children need the instance metadata service, the
systemd runtime's IPAddressDeny= (fake systemctl), and the local side setting it each
applying pass, before any start, only when it changes. The real systemd is in
tests/system/test_imds_fence_box.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ampd.core import ConditionStatus, imds_denied
from ampd.engine.facts import Facts
from ampd.errors import PermanentError
from ampd.gateways.paths import Paths
from ampd.gateways.store import Store
from ampd.gateways.systemd import Completed, SystemdRuntime
from ampd.local.act.imds_fence import ImdsFence
from ampd.local.render.context import RenderContext, WorkspaceFacts
from ampd.local.render.imds import imds_needs
from ampd.local.side.side import LocalSide
from ampd.spec.models import StateSpec
from tests.local.passes import RecordingRuntime, applied, planned

BASE = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1"
WS = WorkspaceFacts("ws-1", "eu-west-1", f"{BASE}/api/v1/remote_write", f"{BASE}/api/v1/query")
DENIED = "169.254.169.254/32 fd00:ec2::254/128"


def spec(signing: str = "proxy", **grafana: Any) -> StateSpec:
    doc: dict[str, Any] = {
        "version": 1,
        "workspace": {"alias": "a"},
        "prometheus": {"remote_write": {"signing": signing}},
    }
    if grafana:
        doc["grafana"] = {"enabled": True, "datasource": grafana}
    return StateSpec.model_validate(doc)


def ctx(workspace: WorkspaceFacts | None = WS, can_sign: bool = False) -> RenderContext:
    return RenderContext(
        "/etc/ampd/state.yml", "/var/lib/ampd", workspace, prometheus_can_sign=can_sign
    )


@pytest.mark.parametrize(
    ("signing", "can_sign", "workspace", "needs"),
    [
        ("proxy", True, WS, False),
        ("native", False, WS, True),
        ("native", True, None, False),  # no workspace: no remote_write, nothing to sign
        ("auto", True, WS, True),
        ("auto", False, WS, False),
    ],
)
def test_prometheus_needs_imds_only_when_it_signs_itself(
    signing: str, can_sign: bool, workspace: WorkspaceFacts | None, needs: bool
) -> None:
    got = imds_needs(spec(signing), ctx(workspace, can_sign))
    assert got == {"prometheus": needs, "grafana": False, "sigv4-proxy": True}


@pytest.mark.parametrize(
    ("datasource", "needs"),
    [
        ({"auth": "ec2_iam_role", "via": "direct"}, True),
        ({"auth": "default", "via": "direct"}, True),
        ({"auth": "ec2_iam_role", "via": "proxy"}, False),
        ({"auth": "keys", "credentials_file": "/etc/ampd/keys", "via": "direct"}, False),
    ],
)
def test_grafana_needs_imds_only_when_it_signs_with_the_host_role(
    datasource: dict[str, str], needs: bool
) -> None:
    got = imds_needs(spec("proxy", **datasource), ctx())
    assert got["grafana"] is needs
    assert got["sigv4-proxy"] is True  # the proxy always signs with the instance role


def test_the_deny_list_is_read_as_systemd_prints_it() -> None:
    assert imds_denied(DENIED.split())
    assert imds_denied(["169.254.169.254", "fd00:ec2::254"])
    assert not imds_denied(["169.254.169.254/32"])
    assert not imds_denied(["169.254.0.0/16", "fd00:ec2::254/128"])  # a wider net is not ours


class FakeSystemctl:
    def __init__(self, deny: str = "") -> None:
        self.deny = deny
        self.calls: list[tuple[str, ...]] = []
        self.fail: Completed | None = None

    def __call__(self, argv: Sequence[str], timeout: float) -> Completed:
        assert timeout <= 45.0  # bounded like every other call
        self.calls.append(tuple(argv[3:]))
        if argv[3] == "show":
            return Completed(0, f"IPAddressDeny={self.deny}\n", "")
        if self.fail is not None:
            return self.fail
        return Completed(0, "", "")


def sets(fake: FakeSystemctl) -> list[tuple[str, ...]]:
    return [c for c in fake.calls if c[0] == "set-property"]


def test_set_imds_denies_only_when_not_denied_yet(tmp_path: Path) -> None:
    fake = FakeSystemctl()
    runtime = SystemdRuntime(Paths(tmp_path, tmp_path / "run"), run=fake)
    runtime.set_imds("prometheus", allowed=False)
    unit = "ampd-prometheus.service"
    assert fake.calls == [
        ("show", unit, "--property=IPAddressDeny"),
        (
            "set-property",
            unit,
            "--runtime",
            "IPAddressDeny=",
            "IPAddressDeny=169.254.169.254 fd00:ec2::254",
        ),
    ]
    fake.calls.clear()
    fake.deny = DENIED
    runtime.set_imds("prometheus", allowed=False)
    assert fake.calls == [("show", unit, "--property=IPAddressDeny")]


def test_set_imds_resets_and_keeps_other_entries(tmp_path: Path) -> None:
    fake = FakeSystemctl(deny=DENIED)
    runtime = SystemdRuntime(Paths(tmp_path, tmp_path / "run"), run=fake)
    runtime.set_imds("grafana", allowed=True)
    assert sets(fake) == [("set-property", "ampd-grafana.service", "--runtime", "IPAddressDeny=")]
    fake.calls.clear()
    fake.deny = "10.9.0.0/16 " + DENIED  # an administrator's own entry stays
    runtime.set_imds("grafana", allowed=True)
    assert sets(fake)[0][3:] == ("IPAddressDeny=", "IPAddressDeny=10.9.0.0/16")
    fake.calls.clear()
    fake.deny = "10.9.0.0/16"
    runtime.set_imds("grafana", allowed=True)
    assert sets(fake) == []


def test_set_imds_that_polkit_refuses_raises(tmp_path: Path) -> None:
    fake = FakeSystemctl()
    fake.fail = Completed(1, "", "Failed to set unit properties: Access denied")
    with pytest.raises(PermanentError, match="not allowed"):
        SystemdRuntime(Paths(tmp_path, tmp_path / "run"), run=fake).set_imds("prometheus", False)


def imds_calls(rt: RecordingRuntime) -> list[tuple[str, ...]]:
    return [c for c in rt.calls if c[0] == "set_imds"]


def test_the_fence_calls_only_on_a_change_and_reports_a_failure() -> None:
    rt, fence = RecordingRuntime("systemd"), ImdsFence()
    needs = {"prometheus": False, "grafana": True, "sigv4-proxy": True}
    cond = fence.apply(rt, needs, ["prometheus", "sigv4-proxy"])
    assert imds_calls(rt) == [
        ("set_imds", "prometheus", "False"),
        ("set_imds", "sigv4-proxy", "True"),
    ]
    assert cond is not None and cond.status is ConditionStatus.TRUE
    assert "prometheus" in cond.message
    rt.calls.clear()
    assert fence.apply(rt, needs, ["prometheus", "sigv4-proxy"]) == cond
    assert rt.calls == []  # nothing changed: no systemctl call
    rt.failing.add("prometheus")
    cond = fence.apply(rt, {**needs, "prometheus": True}, ["prometheus", "sigv4-proxy"])
    assert cond is not None and cond.status is ConditionStatus.FALSE
    assert cond.type == "ImdsFenced"
    assert "ampd-prometheus.service" in cond.message and "boom" in cond.message
    rt.failing.clear()  # retried the next pass
    fence.apply(rt, {**needs, "prometheus": True}, ["prometheus", "sigv4-proxy"])
    assert imds_calls(rt) == [("set_imds", "prometheus", "True")]


def test_the_fence_does_nothing_under_the_supervisor() -> None:
    rt = RecordingRuntime("systemd")
    rt.name = "supervisor"
    assert ImdsFence().apply(rt, {"prometheus": False}, ["prometheus"]) is None
    assert rt.calls == []


def test_the_local_side_fences_before_it_starts_and_not_again(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "lib", tmp_path / "run")
    paths.generated.mkdir(parents=True)
    rt = RecordingRuntime("systemd")
    store = Store(paths.state_dir / "ampd.json")
    side = LocalSide(paths, rt, store, state_path="/s.yml")
    facts = Facts(workspace=WS, prometheus_version=(2, 53, 0))
    result = applied(side, spec("proxy"), facts, store, rt)
    first = imds_calls(rt)
    assert first == [("set_imds", "prometheus", "False"), ("set_imds", "sigv4-proxy", "True")]
    starts = [i for i, c in enumerate(rt.calls) if c[0] in ("start", "restart")]
    assert starts and max(i for i, c in enumerate(rt.calls) if c[0] == "set_imds") < min(starts)
    fenced = [c for c in result.conditions if c.type == "ImdsFenced"]
    assert [c.status for c in fenced] == [ConditionStatus.TRUE]
    rt.calls.clear()
    applied(side, spec("proxy"), facts, store, rt)
    assert imds_calls(rt) == []
    applied(side, spec("native"), facts, store, rt)  # signs itself now: IMDS again
    assert imds_calls(rt) == [("set_imds", "prometheus", "True")]
    rt.calls.clear()
    planned(side, spec("native"), facts)  # plan: touches nothing
    assert imds_calls(rt) == []
