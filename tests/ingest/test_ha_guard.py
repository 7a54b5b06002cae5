"""The HA guard: a host that sends ``cluster`` + ``__replica__`` in a fleet known to be
larger than AMP's fixed 500 HA clusters is refused (plan exits 2 with the reason, apply
applies nothing) unless the state says how many HA clusters the fleet forms."""

from __future__ import annotations

from typing import Any

import pytest

from ampd.ingest.ha import AMP_HA_CLUSTERS, ha_guard
from ampd.spec.load import load_spec
from tests.harness.fixtures_local import AmpdProcess
from tests.ingest.states import host_state


def _spec(labels: str, cost: str = "") -> Any:
    text = f"version: 1\nprometheus:\n  external_labels: {labels}\n{cost}"
    return load_spec(text, "s.yml").spec


@pytest.mark.parametrize(
    ("labels", "cost", "fleet", "source", "refused"),
    [
        ("{}", "", 10_000, "--fleet-size", None),
        ("{cluster: prod}", "", 10_000, "--fleet-size", None),
        ("{cluster: prod, __replica__: a}", "", 1, None, False),  # size unknown: said so
        ("{cluster: prod, __replica__: a}", "", AMP_HA_CLUSTERS, "cost.fleet_size", False),
        ("{cluster: prod, __replica__: a}", "", AMP_HA_CLUSTERS + 1, "--fleet-size", True),
        ("{cluster: prod, __replica__: a}", "cost: {ha_clusters: 2}\n", 10_000, "x", False),
    ],
)
def test_the_guard(
    labels: str, cost: str, fleet: int, source: str | None, refused: bool | None
) -> None:
    verdict = ha_guard(_spec(labels, cost), fleet, source)
    assert (None if verdict is None else verdict.refused) is refused
    if verdict is not None and source is None:
        assert "not checked (pass --fleet-size)" in verdict.reason
    if refused:
        assert verdict is not None and "cost.ha_clusters" in verdict.reason


def test_more_ha_clusters_than_amp_takes_cannot_be_intended() -> None:
    with pytest.raises(Exception, match="less than or equal to 500"):
        _spec("{cluster: a, __replica__: b}", "cost: {ha_clusters: 501}\n")


def _state(**cost: Any) -> dict[str, Any]:
    labels = {"external_labels": {"cluster": "host-7", "__replica__": "a"}}
    return host_state(labels, **({"cost": cost} if cost else {}))


def test_plan_exits_2_with_the_reason_and_apply_refuses(ampd_proc: AmpdProcess) -> None:
    ampd_proc.write_state(_state())
    plan = ampd_proc.ampd("plan", "--fleet-size", "501")
    assert plan.returncode == 2
    assert "ampd: refused: cluster + __replica__ on a fleet of 501 hosts (--fleet-size)" in (
        plan.stderr
    )
    assert "AMP refuses the samples of every HA cluster past its fixed 500" in plan.stdout
    small = ampd_proc.ampd("plan", "--fleet-size", "500")
    assert "ampd: refused" not in small.stderr  # (2 still: nothing is rendered yet)

    ampd_proc.write_state(_state(fleet_size=501))
    applied = ampd_proc.ampd("apply", "--wait", "0")
    assert applied.returncode == 1
    assert "refused, nothing applied: cluster + __replica__ on a fleet of 501" in applied.stderr
    assert not (ampd_proc.state_dir / "generated" / "prometheus.yml").exists()

    ampd_proc.write_state(_state(fleet_size=501, ha_clusters=2))  # HA intended
    intended = ampd_proc.ampd("plan", "--json")
    assert "ampd: refused" not in intended.stderr
    assert intended.returncode == 2  # changes pending only
