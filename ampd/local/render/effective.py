"""The spec as it is rendered here: ``signing: auto`` resolved, the render context built
from the spec and the pass's facts, and :func:`render_files`, the one way generated files
are made (the daemon, ``ampd plan`` and ``ampd render`` use it). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ampd.engine.facts import Facts
from ampd.local.render.context import RenderContext
from ampd.local.render.encoding import Rendered
from ampd.local.render.files import render_all, signing_mode
from ampd.spec.models import ProxySpec, StateSpec


def render_context(
    spec: StateSpec,
    facts: Facts,
    *,
    source: Path | str,
    state_dir: Path,
    python: str,
    process_users: Mapping[str, str] | None = None,
    native_failed: bool = False,
) -> RenderContext:
    """``process_users``: who each process runs as under the runtime in use (the proxy
    signs for Prometheus' and Grafana's); None: the packaged users. ``native_failed``:
    this Prometheus claimed to sign natively and did not (the local side's latch), so it
    is taken for one that cannot."""
    return RenderContext(
        source=str(source),
        state_dir=str(state_dir),
        workspace=facts.workspace if spec.workspace is not None else None,
        instance_labels=facts.instance_labels,
        prometheus_can_sign=facts.prometheus_can_sign and not native_failed,
        grafana_major=facts.grafana_major,
        python=python,
        process_users=dict(process_users or {}),
    )


def effective_spec(spec: StateSpec, ctx: RenderContext) -> StateSpec:
    """Resolve ``signing: auto`` against the proxy: a Prometheus that cannot sign brings
    the proxy even without a proxy section (with its defaults); one that signs natively
    leaves an ``enabled: auto`` proxy off unless Grafana goes through it."""
    mode = signing_mode(spec, ctx)
    if spec.proxy is None and mode == "proxy" and spec.workspace is not None:
        return spec.model_copy(update={"proxy": ProxySpec()})
    grafana_via_proxy = (
        spec.grafana is not None and spec.grafana.enabled and spec.grafana.datasource.via == "proxy"
    )
    if (
        spec.proxy is not None
        and spec.proxy.enabled == "auto"
        and mode == "native"
        and not grafana_via_proxy
    ):
        return spec.model_copy(update={"proxy": spec.proxy.model_copy(update={"enabled": False})})
    return spec


def render_files(spec: StateSpec, ctx: RenderContext) -> tuple[StateSpec, dict[str, Rendered]]:
    """The effective spec and every generated file, by name, exactly as the daemon writes
    them."""
    eff = effective_spec(spec, ctx)
    return eff, {r.name: r for r in render_all(eff, ctx)}
