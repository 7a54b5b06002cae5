"""Fence the child units that need no IMDS off it (issue #23; docs/security.md).

Each applying pass under systemd, before any start or restart, every enabled managed
process gets its unit's IPAddressDeny= set for what it needs now (ampd.local.render.imds). What
was set is remembered: a pass where nothing changed calls nothing. A failure is reported
(condition ``ImdsFenced=False`` naming the unit and the error), retried next pass, and
never stops the pass.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import structlog

from ampd.core import Condition, ConditionStatus
from ampd.errors import AmpdError
from ampd.gateways.runtime import ProcessControl

log = structlog.get_logger()

CONDITION = "ImdsFenced"


class ImdsFence:
    def __init__(self) -> None:
        self._set: dict[str, bool] = {}  # process -> allowed, as last set or found

    def apply(
        self, runtime: ProcessControl, needs: Mapping[str, bool], enabled: Collection[str]
    ) -> Condition | None:
        """Set what differs from what was last set; None when not under systemd."""
        if runtime.name != "systemd":
            return None
        failed: list[str] = []
        for name in sorted(enabled):
            allowed = needs.get(name, True)
            if self._set.get(name) == allowed:
                continue
            try:
                runtime.set_imds(name, allowed)
            except AmpdError as e:
                self._set.pop(name, None)
                failed.append(f"ampd-{name}.service: {e}")
                log.warning("imds.fence_failed", process=name, allowed=allowed, error=str(e))
                continue
            self._set[name] = allowed
            log.info("imds.fence", process=name, imds="allowed" if allowed else "denied")
        if failed:
            text = "could not set IPAddressDeny=: " + "; ".join(failed)
            return Condition(CONDITION, ConditionStatus.FALSE, "SetPropertyFailed", text)
        fenced = sorted(n for n in enabled if not needs.get(n, True))
        text = "no IMDS for " + ", ".join(fenced) if fenced else "every enabled process needs IMDS"
        return Condition(CONDITION, ConditionStatus.TRUE, "Fenced", text)
