"""Which managed processes need the instance metadata service (IMDS).

Under systemd, ampd fences every child that needs no IMDS off 169.254.169.254 and
fd00:ec2::254 (its unit's IPAddressDeny=, set live: ampd.local.act.imds_fence). A child that
needs no credentials of the host's role then cannot get them, even if compromised.

- the SigV4 proxy always signs with the instance role: it needs IMDS;
- Prometheus only when it signs its remote writes itself (``native``) to a known
  workspace; signing through the proxy it never asks IMDS;
- Grafana only when its data source signs with the host's role, directly: ``auth``
  ``default`` or ``ec2_iam_role`` and ``via: direct`` (``keys`` or ``via: proxy`` need none).
"""

from __future__ import annotations

from ampd.local.render.context import RenderContext
from ampd.local.render.files import signing_mode
from ampd.spec.models import StateSpec

__all__ = ["imds_needs"]


def imds_needs(spec: StateSpec, ctx: RenderContext) -> dict[str, bool]:
    """``{"prometheus": bool, "grafana": bool, "sigv4-proxy": True}`` for the effective
    spec and its render context."""
    prom = spec.prometheus is not None and (
        signing_mode(spec, ctx) == "native" and ctx.workspace is not None
    )
    grafana = False
    if spec.grafana is not None:
        ds = spec.grafana.datasource
        grafana = ds.auth in ("default", "ec2_iam_role") and ds.via == "direct"
    return {"prometheus": prom, "grafana": grafana, "sigv4-proxy": True}
