"""Conditions about the signing proxy that its health check cannot show (pure).

- ``ProxyPeerCheck`` False: ``implementation: aws-sigv4-proxy`` signs for any local user
  that reaches its port (it has no per-connection uid check), so the state's
  ``proxy.allowed_users`` is not enforced. Said every pass, so it is never a surprise.
- ``ClockInSync`` False: the built-in proxy learnt from AWS that this host's clock is more
  than ``SKEW_CONDITION_SECONDS`` off (``ampd_proxy_clock_offset_seconds``). Writes still
  flow (the proxy signs at AWS's time), but everything else on the host has the wrong time.
"""

from __future__ import annotations

from ampd.core import Condition, ConditionStatus
from ampd.local.report.flow import families
from ampd.spec.models import StateSpec

__all__ = ["CLOCK_OFFSET", "SKEW_CONDITION_SECONDS", "proxy_conditions"]

CLOCK_OFFSET = "ampd_proxy_clock_offset_seconds"
SKEW_CONDITION_SECONDS = 60.0  # the same bound as ampd.proxy.skew's


def proxy_conditions(spec: StateSpec, proxy_metrics: str | None) -> list[Condition]:
    """``spec`` is the effective one (the proxy section present when a proxy runs);
    ``proxy_metrics`` the built-in proxy's /metrics text, None when not read."""
    out: list[Condition] = []
    proxy = spec.proxy
    if proxy is not None and proxy.implementation == "aws-sigv4-proxy":
        out.append(
            Condition(
                "ProxyPeerCheck",
                ConditionStatus.FALSE,
                "ThirdPartyProxy",
                f"aws-sigv4-proxy on {proxy.listen} signs for any local user that reaches it "
                "(no per-connection uid check; proxy.allowed_users is not enforced); "
                "implementation: builtin checks each connection's owner",
            )
        )
    if proxy_metrics:
        offsets = families(proxy_metrics).get(CLOCK_OFFSET, [])
        offset = offsets[0][1] if offsets else 0.0
        if abs(offset) > SKEW_CONDITION_SECONDS:
            side = "behind" if offset > 0 else "ahead of"
            out.append(
                Condition(
                    "ClockInSync",
                    ConditionStatus.FALSE,
                    "SkewedFromAws",
                    f"this host's clock is {abs(offset):.0f} s {side} AWS's (learnt by the "
                    "signing proxy, which now signs at AWS's time); fix the host's time "
                    "sync (chrony, systemd-timesyncd)",
                )
            )
    return out
