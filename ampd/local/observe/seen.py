"""Everything one local pass reads, before it decides anything: the generated files on
disk, ampd.json's record, the managed processes, who holds their ports, their health,
Prometheus' configuration-reload state and the remote-write evidence (counters and lag).
Reads only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ampd.core import ProcessState, ResourceKey
from ampd.engine.factfinder import OwnedReads
from ampd.engine.facts import PassReads
from ampd.gateways import promtool
from ampd.gateways.files import read_bytes
from ampd.gateways.runtime import RuntimeView
from ampd.gateways.store import StoreView
from ampd.gateways.users import ProcessUser, process_user
from ampd.local.observe import health, promconfig
from ampd.local.observe import processes as observe_local
from ampd.local.plan.changes import PROCESS_INPUTS
from ampd.local.plan.local import FILE_PREFIX, listens_of
from ampd.local.plan.values import LocalSeen, Probed
from ampd.local.render.context import RenderContext
from ampd.local.report.flow import FlowTracker
from ampd.spec.models import StateSpec

__all__ = ["LocalEyes", "generated_files", "observe_side", "probe_processes"]


@dataclass(frozen=True)
class LocalEyes:
    """What the local side reads through: the runtime (to look only) and ampd.json."""

    runtime: RuntimeView
    store: StoreView
    generated: Path
    manage_processes: bool


def generated_files(generated: Path, recorded: Iterable[str]) -> dict[str, str | None]:
    """sha256 of every file under ``generated`` and of every recorded name (None: none)."""
    names = set(recorded)
    with contextlib.suppress(OSError):  # unreadable: the recorded names are read below
        names |= {str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file()}
    return observe_local.observe_files(generated, sorted(names))


def probe_processes(
    runtime: RuntimeView,
    spec: StateSpec,
    listens: Mapping[str, str],
    *,
    manage_processes: bool,
    observed: Mapping[str, ProcessState] | None = None,
    reads: PassReads | None = None,
) -> Probed:
    """The processes as the runtime shows them (``observed``: as just read), then what
    their ports answer: every loopback request owner-checked (a squatter is asked
    nothing). ``spec``: the effective spec. ``reads``: the pass's shared reads (None:
    this call's own, so that each URL is read once here at least)."""
    if not manage_processes:
        return Probed()
    reads = reads if reads is not None else OwnedReads()
    processes = (
        dict(observed)
        if observed is not None
        else observe_local.observe_processes(runtime, sorted(PROCESS_INPUTS))
    )
    owners = _owners(runtime, listens)
    external_proxy = spec.proxy is not None and spec.proxy.implementation != "builtin"
    squatted = observe_local.find_squatters(listens, owners)
    probes = {
        name: health.probe(
            name,
            listen,
            owners[name],
            squatted,
            tcp_only=external_proxy and name == "sigv4-proxy",
        )
        for name, listen in listens.items()
        if (st := processes.get(name)) is not None and st.running
    }
    prom = probes.get("prometheus")
    prom_up = prom is not None and spec.prometheus is not None and spec.prometheus.enabled
    uid = owners["prometheus"].uid if "prometheus" in owners else None
    own_proxy = "sigv4-proxy" in probes and "sigv4-proxy" not in squatted and not external_proxy
    return Probed(
        processes=processes,
        squatted=dict(squatted),
        probes=probes,
        config_loaded=(
            promconfig.config_condition(listens["prometheus"], owner=uid, reads=reads)
            if prom is not None and prom.ok
            else None
        ),
        proxy_metrics=(
            observe_local.scrape(
                listens["sigv4-proxy"], owner=owners["sigv4-proxy"].uid, reads=reads
            )
            if own_proxy
            else None
        ),
        targets=(
            health.targets(listens["prometheus"], uid, reads)
            if prom_up and uid is not None
            else None
        ),
    )


def observe_side(
    eyes: LocalEyes,
    spec: StateSpec,
    ctx: RenderContext,
    *,
    now: float,
    flow: FlowTracker,
    native_failed: bool,
    last_change: Mapping[ResourceKey, float],
    reads: PassReads | None = None,
) -> LocalSeen:
    """``spec`` is the effective spec of ``ctx``. ``flow`` takes this pass's remote-write
    counters (its baseline moves on); ``native_failed`` is the latch as it stands, and the
    seen value carries it set when the evidence shows unsigned native writes. ``reads``:
    the pass's shared reads (``Facts.reads``); None: this observe's own, so that the
    reload state and the remote-write evidence share one read of Prometheus' /metrics."""
    stored = eyes.store.load()
    reads = reads if reads is not None else OwnedReads()
    listens = listens_of(spec) if eyes.manage_processes else {}
    probed = probe_processes(
        eyes.runtime, spec, listens, manage_processes=eyes.manage_processes, reads=reads
    )
    recorded = [k.removeprefix(FILE_PREFIX) for k in stored.applied if k.startswith(FILE_PREFIX)]
    external_proxy = spec.proxy is not None and spec.proxy.implementation != "builtin"
    evidence = health.remote_write_condition(
        flow,
        spec,
        ctx,
        listens,
        probed.processes,
        external_proxy,
        _owners(eyes.runtime, listens),
        probed.squatted,
        reads,
    )
    return LocalSeen(
        now=now,
        applied=dict(stored.applied),
        instance_id=stored.instance_id,
        files=generated_files(eyes.generated, recorded),
        prometheus_yml=read_bytes(eyes.generated / "prometheus.yml"),
        promtool=promtool.find_promtool(spec.prometheus.binary if spec.prometheus else None),
        listens=listens,
        probed=probed,
        flow=evidence.condition,
        remote_write_lag=evidence.lag,
        native_failed=native_failed or evidence.native_unsigned,
        process_users=dict(ctx.process_users),
        last_change=dict(last_change),
    )


def _owners(runtime: RuntimeView, listens: Mapping[str, str]) -> dict[str, ProcessUser]:
    return {name: process_user(name, runtime.name) for name in listens}
