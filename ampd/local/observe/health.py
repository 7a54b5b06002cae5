"""What the local side reads after acting: each process's health (from its own user's
listener only), whether remote write flows and how far behind it is, the proxy's own
conditions, the target count.
Reads only; every loopback request is owner-checked (``owner=UID``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import NamedTuple

from ampd.core import Condition, ConditionStatus, ProcessState
from ampd.engine.facts import PassReads
from ampd.gateways.users import ProcessUser
from ampd.local.observe import processes as observe_local
from ampd.local.render.context import RenderContext
from ampd.local.render.files import signing_mode
from ampd.local.report.backlog import remote_write_lag
from ampd.local.report.flow import FlowTracker
from ampd.local.report.owners import squat_text
from ampd.local.report.proxy import proxy_conditions
from ampd.local.report.statuses import HealthProbe
from ampd.spec.checks import proxy_enabled
from ampd.spec.models import StateSpec

__all__ = [
    "RemoteWriteEvidence",
    "probe",
    "proxy_evidence",
    "remote_write_condition",
    "targets",
]


def probe(
    name: str,
    listen: str,
    owner: ProcessUser,
    squatted: dict[str, observe_local.Squat],
    *,
    tcp_only: bool,
) -> HealthProbe:
    """A process is healthy only if its own user answers on its port; a squatter found
    here (after the listener check) joins ``squatted``."""
    if name in squatted:
        return HealthProbe(False, squat_text(squatted[name]))
    p = observe_local.probe_health(name, listen, tcp_only=tcp_only, owner=owner.uid)
    if p.foreign_uid is not None:
        squatted[name] = observe_local.squat(name, listen, p.foreign_uid, owner)
        return HealthProbe(False, squat_text(squatted[name]))
    return HealthProbe(p.ok, p.detail)


class RemoteWriteEvidence(NamedTuple):
    """RemoteWriteFlowing, whether native signing was shown not to sign, and the queue's
    lag in seconds (newest appended - newest sent; None: not read, or nothing sent yet)."""

    condition: Condition | None
    native_unsigned: bool = False
    lag: float | None = None


def remote_write_condition(
    flow: FlowTracker,
    spec: StateSpec,
    ctx: RenderContext,
    listens: Mapping[str, str],
    observed: Mapping[str, ProcessState],
    external_proxy: bool,
    owners: Mapping[str, ProcessUser],
    squatted: Mapping[str, observe_local.Squat],
    reads: PassReads | None = None,
) -> RemoteWriteEvidence:
    """``reads``: the pass's shared reads (each /metrics read once per pass)."""
    prom = spec.prometheus
    if prom is None or not prom.enabled or prom.remote_write is None:
        return RemoteWriteEvidence(None)
    if ctx.workspace is None:
        msg = "the workspace is not known yet"
        return RemoteWriteEvidence(
            Condition("RemoteWriteFlowing", ConditionStatus.UNKNOWN, "NoWorkspace", msg)
        )
    st = observed.get("prometheus")
    if st is None or not st.running or "prometheus" not in listens:
        msg = "Prometheus is not running"
        return RemoteWriteEvidence(
            Condition("RemoteWriteFlowing", ConditionStatus.FALSE, "PrometheusDown", msg)
        )
    squats = [squatted[n] for n in ("prometheus", "sigv4-proxy") if n in squatted]
    if squats:  # samples may be going to whoever holds the port: never "Flowing"
        msg = squat_text(squats[0])
        return RemoteWriteEvidence(
            Condition("RemoteWriteFlowing", ConditionStatus.FALSE, "PortSquatted", msg)
        )
    text = observe_local.scrape(listens["prometheus"], owner=owners["prometheus"].uid, reads=reads)
    builtin_proxy = "sigv4-proxy" in listens and not external_proxy
    # (an external aws-sigv4-proxy would sign and forward a /metrics request upstream)
    proxy_text = (
        observe_local.scrape(listens["sigv4-proxy"], owner=owners["sigv4-proxy"].uid, reads=reads)
        if builtin_proxy
        else None
    )
    verdict = flow.observe(text, proxy_text, signing=signing_mode(spec, ctx), now=time.monotonic())
    condition = Condition("RemoteWriteFlowing", verdict.status, verdict.reason, verdict.message)
    lag = remote_write_lag(text) if text is not None else None
    return RemoteWriteEvidence(condition, verdict.native_unsigned, lag)


def proxy_evidence(
    spec: StateSpec,
    probes: Mapping[str, HealthProbe],
    external_proxy: bool,
    owners: Mapping[str, ProcessUser],
    squatted: Mapping[str, observe_local.Squat],
) -> list[Condition]:
    """ProxyPeerCheck (a third-party proxy checks no uid) and ClockInSync (read from
    the built-in proxy's own /metrics, when it is up and the port is its own)."""
    if spec.proxy is None or not proxy_enabled(spec):
        return []
    own = "sigv4-proxy" in probes and "sigv4-proxy" not in squatted
    text = (
        observe_local.scrape(spec.proxy.listen, owner=owners["sigv4-proxy"].uid)
        if own and not external_proxy
        else None
    )
    return proxy_conditions(spec, text)


def targets(listen: str, owner: int, reads: PassReads | None = None) -> int | None:
    text = observe_local.scrape(listen, "/api/v1/targets?state=active", owner=owner, reads=reads)
    return None if text is None else text.count('"scrapeUrl"')
