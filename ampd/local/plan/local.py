"""The local side's plan, from the spec, the render context and what was seen. Pure.

Render every generated file, compare with what is on disk and what ampd last wrote (the
file changes, with prometheus.yml's label diff), decide what each managed process needs
(start, stop, restart, reload), whether Prometheus' remote-write queue must drain first
(:mod:`ampd.local.plan.drain`), and what IMDS each process may reach. A new instance (a
host started from another one's image) plans with the wipe of the old one's state done:
no file record, Prometheus and Grafana stopped (``ampd.local.act.instance``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ampd.core import Command, Kind, Plan, ProcessState, ResourceKey
from ampd.local.plan import drain
from ampd.local.plan.changes import (
    DesiredFile,
    plan_files,
    plan_processes,
    unrecorded_files,
    with_label_diff,
)
from ampd.local.plan.values import LocalSeen
from ampd.local.render.context import RenderContext
from ampd.local.render.effective import render_files
from ampd.local.render.encoding import Rendered
from ampd.local.render.imds import imds_needs
from ampd.spec.checks import proxy_enabled
from ampd.spec.models import StateSpec

__all__ = [
    "FILE_PREFIX",
    "OWN_DATA",
    "Drain",
    "LocalPlan",
    "command_from_rendered",
    "listens_of",
    "plan_local",
]

FILE_PREFIX = Kind.FILE.value + "/"  # ampd.json's keys of generated files
OWN_DATA = ("prometheus", "grafana")  # under data/, each its process's own user's
PROM = ResourceKey(Kind.PROCESS, "prometheus")


@dataclass(frozen=True)
class Drain:
    """Wait until Prometheus' remote-write queue is sent before touching it."""

    reason: str  # ampd.local.plan.drain.RESTART or REBUILT
    listen: str  # where the running Prometheus answers


@dataclass(frozen=True)
class LocalPlan:
    """Everything ``apply`` carries out, decided from one ``LocalSeen``."""

    spec: StateSpec  # the effective spec (``signing: auto`` resolved)
    ctx: RenderContext
    rendered: Mapping[str, Rendered]  # every generated file, by name
    commands: Mapping[str, Command]  # process -> its command (from NAME.cmd.json)
    listens: Mapping[str, str]  # process -> address, for those that should run
    files: Plan  # file changes and drift
    processes: Plan  # process changes and skips
    unrecorded: tuple[str, ...]  # files a pass wrote and did not record
    wake: float | None  # wall-clock time a crash backoff ends
    drain: Drain | None  # the queue drains before Prometheus is touched
    imds: Mapping[str, bool]  # process -> may reach IMDS
    instance_id: str | None  # this host's instance (recorded by apply)
    new_instance: bool  # the recorded state is another instance's: apply wipes it first

    @property
    def plan(self) -> Plan:
        return self.files + self.processes


def command_from_rendered(r: Rendered) -> Command:
    data = json.loads(r.data)
    name = r.name.removesuffix(".cmd.json")
    return Command(name, tuple(data["argv"]), dict(data.get("env", {})))


def listens_of(spec: StateSpec) -> dict[str, str]:
    """Where each enabled managed process listens (the effective spec's)."""
    out: dict[str, str] = {}
    if spec.prometheus is not None and spec.prometheus.enabled:
        out["prometheus"] = spec.prometheus.listen
    if spec.proxy is not None and proxy_enabled(spec):
        out["sigv4-proxy"] = spec.proxy.listen
    if spec.grafana is not None and spec.grafana.enabled:
        out["grafana"] = spec.grafana.listen
    return out


def plan_local(
    spec: StateSpec,
    ctx: RenderContext,
    seen: LocalSeen,
    *,
    instance_id: str | None,
    manage_processes: bool,
) -> LocalPlan:
    eff, rendered = render_files(spec, ctx)
    new_instance = instance_id is not None and seen.instance_id != instance_id
    wiped = new_instance and seen.instance_id is not None
    applied = seen.applied
    processes = dict(seen.probed.processes)
    if wiped:  # apply drops these first (ampd.local.act.instance.check_instance)
        applied = {k: v for k, v in applied.items() if not k.startswith(FILE_PREFIX)}
        processes = {n: st for n, st in processes.items() if n not in OWN_DATA}
    files, unrecorded = _plan_files(eff, rendered, applied, seen)
    commands = {
        r.name.removesuffix(".cmd.json"): command_from_rendered(r)
        for r in rendered.values()
        if r.name.endswith(".cmd.json")
    }
    procs, wake = Plan(), None
    if manage_processes:
        procs, wake = plan_processes(
            commands,
            {n: processes[n] for n in sorted(processes)},
            files.changes,
            now=seen.now,
            unrecorded=unrecorded,
        )
    listens = listens_of(eff) if manage_processes else {}
    return LocalPlan(
        spec=eff,
        ctx=ctx,
        rendered=rendered,
        commands=commands,
        listens=listens,
        files=files,
        processes=procs,
        unrecorded=unrecorded,
        wake=wake,
        drain=_drain(files + procs, rendered, processes, listens, seen.prometheus_yml),
        imds=imds_needs(eff, ctx),
        instance_id=instance_id,
        new_instance=new_instance,
    )


def _plan_files(
    spec: StateSpec,
    rendered: Mapping[str, Rendered],
    applied: Mapping[str, str],
    seen: LocalSeen,
) -> tuple[Plan, tuple[str, ...]]:
    """The file changes, and the files a pass wrote without recording them."""
    names = set(rendered) | {
        k.removeprefix(FILE_PREFIX) for k in applied if k.startswith(FILE_PREFIX)
    }
    on_disk = {name: seen.files.get(name) for name in sorted(names)}
    desired = [DesiredFile(r.name, r.sha256) for r in rendered.values()]
    plan = plan_files(
        desired, on_disk, applied, correct_drift=spec.aws_or_default.drift == "correct"
    )
    prom = rendered.get("prometheus.yml")
    if any(c.key.name == "prometheus.yml" for c in (*plan.changes, *plan.drift)):
        new = prom.data if prom is not None else None
        plan = with_label_diff(plan, seen.prometheus_yml, new)
    return plan, unrecorded_files(desired, on_disk, applied)


def _drain(
    plan: Plan,
    rendered: Mapping[str, Rendered],
    processes: Mapping[str, ProcessState],
    listens: Mapping[str, str],
    running_yml: bytes | None,
) -> Drain | None:
    """Before a reload that rebuilds Prometheus' remote-write queue (new workspace or
    external labels), or a restart/stop it cannot avoid, the queue drains (bounded): the
    new queue starts reading the WAL from "now"."""
    st = processes.get("prometheus")
    if st is None or not st.running or not plan.changes:
        return None
    listen = _running_listen(st) or listens.get("prometheus")  # where it runs now
    if listen is None:
        return None
    actions = [c.action for c in plan.changes if c.key == PROM]
    new = rendered.get("prometheus.yml")
    reason = drain.drain_reason(actions, running_yml, new.data if new is not None else None)
    return None if reason is None else Drain(reason, listen)


def _running_listen(st: ProcessState) -> str | None:
    for arg in st.command.argv if st.command is not None else ():
        if arg.startswith("--web.listen-address="):
            return arg.partition("=")[2]
    return None
