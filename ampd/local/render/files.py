"""Render every generated file to bytes. Deterministic: same inputs, same bytes."""

from __future__ import annotations

import hashlib
from functools import cache
from typing import TYPE_CHECKING, Any

from ampd.core import PROCESS_USERS
from ampd.local.render.context import RenderContext
from ampd.local.render.encoding import Rendered, json_file, yaml_json
from ampd.local.render.grafana import render_grafana
from ampd.spec.checks import proxy_enabled
from ampd.spec.models import StateSpec

if TYPE_CHECKING:
    from jinja2 import Environment


@cache
def _env() -> Environment:
    """The template environment, built on first render: the daemon reaches READY=1
    without importing jinja2 (about 2 MiB and tens of ms of start-up)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined  # noqa: PLC0415 - lazy

    env = Environment(
        loader=PackageLoader("ampd.local.render", "templates"),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - YAML and INI, not HTML; values go through yaml_str
        keep_trailing_newline=True,
    )
    env.filters["yaml_str"] = lambda value: yaml_json(value).decode()
    return env


def signing_mode(spec: StateSpec, ctx: RenderContext) -> str:
    """``proxy`` or ``native``: how Prometheus' remote writes get signed."""
    prom = spec.prometheus
    if prom is None or prom.remote_write is None:
        return "none"
    choice = prom.remote_write.signing
    if choice == "auto":
        return "native" if ctx.prometheus_can_sign else "proxy"
    return choice


def proxy_url(spec: StateSpec) -> str:
    assert spec.proxy is not None
    return f"http://{spec.proxy.listen}"


def render_prometheus(spec: StateSpec, ctx: RenderContext) -> bytes:
    prom = spec.prometheus
    assert prom is not None
    remote_write: dict[str, Any] | None = None
    ws = ctx.workspace
    if prom.remote_write is not None and ws is not None:
        mode = signing_mode(spec, ctx)
        if mode == "proxy" and spec.proxy is not None:
            url = proxy_url(spec) + f"/workspaces/{ws.id}/api/v1/remote_write"
        else:
            url = ws.remote_write_url
        remote_write = {
            "url": url,
            "sigv4": mode == "native",
            "region": ws.region,
            "role_arn": spec.proxy.assume_role_arn if spec.proxy is not None else None,
            "queue": prom.remote_write.queue,
        }
    labels = dict(prom.external_labels)
    for name in prom.instance_labels:
        value = ctx.instance_labels.get(name)
        if value:
            labels[name] = value
    text = (
        _env()
        .get_template("prometheus.yml.j2")
        .render(
            source=ctx.source,
            drift_verb="reported" if spec.aws_or_default.drift == "report" else "reverted",
            prom=prom,
            external_labels=labels,
            ampd_metrics=spec.metrics.listen
            if spec.metrics.enabled and spec.metrics.scrape
            else None,
            remote_write=remote_write,
        )
    )
    return text.encode()


def _block(lines: list[str], header: str) -> list[str]:
    """The line ``header`` and every following line indented deeper than it."""
    for i, line in enumerate(lines):
        if line.rstrip() == header:
            depth = len(header) - len(header.lstrip())
            out = [line]
            for follow in lines[i + 1 :]:
                if follow.strip() and len(follow) - len(follow.lstrip()) <= depth:
                    break
                out.append(follow)
            while out and not out[-1].strip():
                out.pop()
            return out
    return []


def queue_sections(prometheus_yml: bytes) -> tuple[bytes, bytes]:
    """The bytes of ``global.external_labels`` and of ``remote_write`` in a rendered
    prometheus.yml (empty when absent).

    Prometheus rebuilds its remote-write queue -- dropping what it held -- when either
    changes on a reload; everything else (scrape jobs, intervals, the header) leaves the
    queue alone. Both are rendered only from the workspace, the remote-write settings and
    the labels, never from scrape jobs.
    """
    lines = prometheus_yml.decode().splitlines(keepends=True)
    labels = "".join(_block(lines, "  external_labels:"))
    remote_write = "".join(_block(lines, "remote_write:"))
    return labels.encode(), remote_write.encode()


def queue_fingerprint(prometheus_yml: bytes) -> str:
    """sha256 over :func:`queue_sections`: equal fingerprints, same queue after a reload.
    A reload that changes it makes Prometheus drop what its queue held, so wait for the
    queue to drain first (``ampd.gateways.promqueue.wait_drained``)."""
    labels, remote_write = queue_sections(prometheus_yml)
    digest = hashlib.sha256()
    for part in (labels, remote_write):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def prometheus_argv(spec: StateSpec, ctx: RenderContext) -> list[str]:
    prom = spec.prometheus
    assert prom is not None
    # under data/prometheus/: the directory ampd-prometheus.service may write
    data = f"{ctx.state_dir}/data/prometheus/{prom.mode}"
    argv = [
        prom.binary,
        f"--config.file={ctx.state_dir}/generated/prometheus.yml",
        # no --web.enable-lifecycle: any local user could POST /-/quit; ampd reloads by SIGHUP
        f"--web.listen-address={prom.listen}",
    ]
    if prom.mode == "agent":
        argv += ["--enable-feature=agent", f"--storage.agent.path={data}"]
    else:
        argv += [f"--storage.tsdb.path={data}"]
        if prom.retention:
            argv.append(f"--storage.tsdb.retention.time={prom.retention}")
    return argv


def proxy_allowed_users(spec: StateSpec, ctx: RenderContext) -> list[str]:
    """Whom the proxy signs for: the state's ``proxy.allowed_users``, else the user
    Prometheus runs as, plus Grafana's when Grafana is on. Never root by default: a
    root-run forwarder (SSM port forwarding, a host-network container) must be named."""
    assert spec.proxy is not None
    if spec.proxy.allowed_users is not None:
        return list(spec.proxy.allowed_users)
    users = ctx.process_users or PROCESS_USERS
    out = [users.get("prometheus", PROCESS_USERS["prometheus"])]
    if spec.grafana is not None and spec.grafana.enabled:
        grafana = users.get("grafana", PROCESS_USERS["grafana"])
        out += [grafana] if grafana not in out else []
    return out


def proxy_settings(spec: StateSpec, ctx: RenderContext) -> dict[str, Any]:
    assert spec.proxy is not None
    ws = ctx.workspace
    region = ws.region if ws is not None else spec.aws_or_default.region
    upstream = ws.base_url if ws is not None else f"https://aps-workspaces.{region}.amazonaws.com"
    return {
        "listen": spec.proxy.listen,
        "region": region,
        "service": "aps",
        "upstream": upstream,
        "workspace_id": ws.id if ws is not None else None,
        "assume_role_arn": spec.proxy.assume_role_arn,
        "allow_non_loopback": spec.proxy.allow_non_loopback,
        "allowed_uids": proxy_allowed_users(spec, ctx),
    }


def proxy_argv(spec: StateSpec, ctx: RenderContext) -> list[str]:
    assert spec.proxy is not None
    if spec.proxy.implementation == "aws-sigv4-proxy":
        assert spec.proxy.binary is not None
        settings = proxy_settings(spec, ctx)
        host, _, port = spec.proxy.listen.rpartition(":")
        scheme, _, upstream_host = str(settings["upstream"]).partition("://")
        # --host pins the upstream (never the client's Host header); --port is the listen
        # address, kept on loopback like the built-in proxy.
        argv = [
            spec.proxy.binary,
            "--name",
            "aps",
            "--region",
            str(settings["region"]),
            "--host",
            upstream_host,
            "--port",
            f"{host}:{port}",
        ]
        if scheme == "http":
            argv += ["--upstream-url-scheme", "http"]
        if spec.proxy.assume_role_arn:
            argv += ["--role-arn", spec.proxy.assume_role_arn]
        return argv
    return [ctx.python, "proxy", "--config", f"{ctx.state_dir}/generated/proxy.json"]


def render_all(spec: StateSpec, ctx: RenderContext) -> list[Rendered]:
    """Every file ampd generates for this spec, sorted by name."""
    out: list[Rendered] = []
    prom = spec.prometheus
    if prom is not None and prom.enabled:
        out.append(Rendered("prometheus.yml", render_prometheus(spec, ctx)))
        out.append(
            Rendered(
                "prometheus.cmd.json", json_file({"argv": prometheus_argv(spec, ctx), "env": {}})
            )
        )
    if spec.proxy is not None and proxy_enabled(spec):
        out.append(Rendered("proxy.json", json_file(proxy_settings(spec, ctx))))
        out.append(
            Rendered("sigv4-proxy.cmd.json", json_file({"argv": proxy_argv(spec, ctx), "env": {}}))
        )
    if spec.grafana is not None and spec.grafana.enabled:
        out.extend(render_grafana(spec, ctx))
    return sorted(out, key=lambda r: r.name)
