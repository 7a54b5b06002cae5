"""Whether the running Prometheus runs the configuration it was last asked to load.

Reloads are signals (SIGHUP), which answer nothing: a reload that failed, whoever sent
it (ampd, or an operator's ``kill -HUP`` after a hand edit), is seen by the next pass
in Prometheus' own ``prometheus_config_last_reload_successful``.
"""

from __future__ import annotations

from ampd.core import Condition, ConditionStatus
from ampd.engine.facts import PassReads
from ampd.gateways.http import HttpResult, owned_get
from ampd.gateways.promreload import SUCCESSFUL, Fetch, read_reload_state

CONDITION = "PrometheusConfigLoaded"


def shared_get(reads: PassReads, owner: int) -> Fetch:
    """A ``fetch(url)`` through the pass's shared reads, for the gateway's readers."""

    def fetch(url: str) -> HttpResult:
        a = reads.get(url, owner)
        return HttpResult(a.status, a.body, a.foreign_uid)

    return fetch


def config_condition(
    listen: str, *, owner: int | None = None, reads: PassReads | None = None
) -> Condition | None:
    """True while the last reload took; False once one failed (Prometheus keeps running
    the configuration it had). None when Prometheus does not answer, or (``owner``) the
    listener is not Prometheus' user's: its process status says so already. ``reads``:
    the pass's shared reads (Prometheus' /metrics is read once for the whole pass)."""
    if owner is None:
        state = read_reload_state(listen)
    elif reads is not None:
        state = read_reload_state(listen, shared_get(reads, owner))
    else:
        state = read_reload_state(listen, owned_get(owner))
    if state is None:
        return None
    if state.successful:
        return Condition(CONDITION, ConditionStatus.TRUE, "Loaded")
    message = (
        f"the last configuration reload failed ({SUCCESSFUL} is 0): Prometheus runs the "
        "configuration it had before; its log says why"
    )
    return Condition(CONDITION, ConditionStatus.FALSE, "ReloadFailed", message)
