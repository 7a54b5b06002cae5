"""Pure: the HA guard. AMP deduplicates an HA pair's samples by the ``cluster`` and
``__replica__`` external labels, and accepts at most 500 HA clusters (distinct
``cluster`` values sent with a ``__replica__``) per workspace, a limit that cannot be
raised: the samples of every cluster past the 500th are refused.

One host cannot see the ``cluster`` values of the others. So when this host sends both
labels and its fleet is known to be larger than 500 hosts, the fleet may form more HA
clusters than AMP takes (every host its own, in the worst case), and the plan is refused
-- unless the state says how many HA clusters the fleet forms (``cost.ha_clusters``, at
most 500): HA is then what it means. A fleet of unknown size is not refused; the guard
says it did not check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ampd.spec.models import StateSpec

__all__ = ["AMP_HA_CLUSTERS", "HaGuard", "ha_guard"]

AMP_HA_CLUSTERS = 500  # per workspace, fixed (AMP's service quotas)


@dataclass(frozen=True)
class HaGuard:
    refused: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"refused": self.refused, "reason": self.reason}


def ha_guard(spec: StateSpec, fleet_size: int, fleet_source: str | None) -> HaGuard | None:
    """The verdict for a host that sends ``cluster`` + ``__replica__`` (None otherwise).
    ``fleet_source``: where the fleet size comes from; None: not known."""
    prom = spec.prometheus
    labels = prom.external_labels if prom is not None else {}
    if "cluster" not in labels or "__replica__" not in labels:
        return None
    intended = spec.cost.ha_clusters if spec.cost is not None else None
    if intended is not None:
        return HaGuard(
            False,
            f"HA intended: the fleet forms {intended} HA cluster(s) (cost.ha_clusters), "
            f"within AMP's {AMP_HA_CLUSTERS}",
        )
    if fleet_source is None:
        return HaGuard(
            False,
            "cluster + __replica__: the fleet's size is not known, so AMP's limit of "
            f"{AMP_HA_CLUSTERS} HA clusters was not checked (pass --fleet-size)",
        )
    if fleet_size <= AMP_HA_CLUSTERS:
        return HaGuard(
            False,
            f"cluster + __replica__ on a fleet of {fleet_size} ({fleet_source}): at most "
            f"{fleet_size} HA clusters, within AMP's {AMP_HA_CLUSTERS}",
        )
    return HaGuard(
        True,
        f"cluster + __replica__ on a fleet of {fleet_size} hosts ({fleet_source}): if the "
        f"hosts' cluster values differ, AMP refuses the samples of every HA cluster past "
        f"its fixed {AMP_HA_CLUSTERS}; keep cluster to the HA pair (per-host identity "
        "belongs in prometheus.instance_labels), or say how many HA clusters the fleet "
        f"forms with cost.ha_clusters (at most {AMP_HA_CLUSTERS})",
    )
