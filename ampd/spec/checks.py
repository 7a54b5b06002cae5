"""Semantic checks of a type-valid StateSpec: the mistakes types cannot catch.

Pure. Each problem is (field path, message); the loader adds file, line and column.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ampd.core import is_loopback_host
from ampd.spec.models import StateSpec, split_listen

Loc = tuple[str | int, ...]

# The scrape jobs ampd renders itself (ampd/render/templates/prometheus.yml.j2): Prometheus
# refuses a configuration with two jobs of one name.
BUILTIN_JOBS = ("prometheus", "ampd")
# CreateLoggingConfiguration's logGroupArn, as the amp model (botocore 1.44.8) patterns it;
# tests/engine/test_spec_checks.py holds this copy to the model
LOG_GROUP_ARN = re.compile(
    r"arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*"
)


def proxy_enabled(spec: StateSpec) -> bool:
    """Whether the signing proxy runs: explicitly, or because something goes through it."""
    if spec.proxy is None:
        return False
    if spec.proxy.enabled != "auto":
        return bool(spec.proxy.enabled)
    grafana_via_proxy = (
        spec.grafana is not None and spec.grafana.enabled and spec.grafana.datasource.via == "proxy"
    )
    prom = spec.prometheus
    writes = prom is not None and prom.enabled and prom.remote_write is not None
    return bool(spec.workspace is not None and (writes or grafana_via_proxy))


def executables(spec: StateSpec) -> list[tuple[Loc, str, str]]:
    """(field, path, what ampd does with it) of every path in the state that ampd runs or
    hands a program as its home; ampd also runs a promtool beside the Prometheus binary.
    Each must be root's all the way down (checked by ampd.gateways.execcheck)."""
    out: list[tuple[Loc, str, str]] = []
    if spec.prometheus is not None:
        binary = spec.prometheus.binary
        out.append((("prometheus", "binary"), binary, "run"))
        sibling = str(PurePosixPath(binary).parent / "promtool")  # (with_name fails on "/")
        out.append((("prometheus", "binary"), sibling, "run"))
    if spec.grafana is not None:
        out.append((("grafana", "binary"), spec.grafana.binary, "run"))
        if spec.grafana.homepath is not None:
            out.append((("grafana", "homepath"), spec.grafana.homepath, "used as Grafana's home"))
    if spec.proxy is not None and spec.proxy.binary is not None:
        out.append((("proxy", "binary"), spec.proxy.binary, "run"))
    return out


_EXPOSURE = {
    "proxy": "anything that reaches it can sign requests with this host's role",
    "prometheus": "anyone who reaches it can read every series and the configuration",
    "grafana": "its login page and API are then open to the network",
    "metrics": "ampd's own metrics (workspace ids, roles, errors) are then open to the network",
}


def _listen_sections(spec: StateSpec) -> list[tuple[str, str, bool]]:
    """(section, listen, enabled) of every listener section the state has."""
    out: list[tuple[str, str, bool]] = []
    if spec.prometheus is not None:
        out.append(("prometheus", spec.prometheus.listen, spec.prometheus.enabled))
    if spec.proxy is not None:
        out.append(("proxy", spec.proxy.listen, proxy_enabled(spec)))
    if spec.grafana is not None:
        out.append(("grafana", spec.grafana.listen, spec.grafana.enabled))
    out.append(("metrics", spec.metrics.listen, spec.metrics.enabled))
    return out


def non_loopback_listeners(spec: StateSpec) -> list[tuple[str, str]]:
    """(section, listen) of every enabled listener bound beyond loopback: each one opted
    in with ``allow_non_loopback: true`` (:func:`semantic_problems` refuses the rest)."""
    return [
        (name, listen)
        for name, listen, on in _listen_sections(spec)
        if on and not is_loopback_host(split_listen(listen)[0])
    ]


def _non_loopback(spec: StateSpec) -> list[tuple[Loc, str]]:
    out: list[tuple[Loc, str]] = []
    for name, listen, _ in _listen_sections(spec):
        if is_loopback_host(split_listen(listen)[0]) or getattr(spec, name).allow_non_loopback:
            continue
        out.append(
            (
                (name, "listen"),
                f"{listen!r} is not loopback: {_EXPOSURE[name]}; set "
                f"{name}.allow_non_loopback: true if you mean it",
            )
        )
    return out


def _ha_labels(spec: StateSpec) -> list[tuple[Loc, str]]:
    """AMP deduplicates an HA pair's samples by ``cluster`` + ``__replica__``: a replica
    label alone deduplicates nothing (and AMP takes at most 500 clusters a workspace,
    which one host cannot count: docs/fleet.md)."""
    prom = spec.prometheus
    if prom is None or "__replica__" not in prom.external_labels:
        return []
    if "cluster" in prom.external_labels:
        return []
    return [
        (
            ("prometheus", "external_labels", "__replica__"),
            "AMP deduplicates HA pairs by cluster + __replica__; set cluster too",
        )
    ]


def _derived_labels(spec: StateSpec) -> list[tuple[Loc, str]]:
    """A label-set limit derived from the stack's labels names labels it ships
    (``prometheus.external_labels``): else the AWS side could not write it."""
    ws = spec.workspace
    if ws is None:
        return []
    shipped = spec.prometheus.external_labels if spec.prometheus is not None else {}
    out: list[tuple[Loc, str]] = []
    for i, limit in enumerate(ws.label_set_limits):
        for k, name in enumerate(limit.derive or []):
            if name not in shipped:
                out.append(
                    (
                        ("workspace", "label_set_limits", i, "derive", k),
                        f"{name!r} is not one of prometheus.external_labels"
                        f" ({', '.join(sorted(shipped)) or 'none'}): nothing to derive it from",
                    )
                )
    return out


def semantic_problems(spec: StateSpec) -> list[tuple[Loc, str]]:  # noqa: PLR0915 - one flat list of checks
    out: list[tuple[Loc, str]] = []
    listeners: list[tuple[Loc, str]] = []
    if spec.prometheus is not None and spec.prometheus.enabled:
        listeners.append((("prometheus", "listen"), spec.prometheus.listen))
    if spec.proxy is not None and proxy_enabled(spec):
        listeners.append((("proxy", "listen"), spec.proxy.listen))
    if spec.grafana is not None and spec.grafana.enabled:
        listeners.append((("grafana", "listen"), spec.grafana.listen))
    if spec.metrics.enabled:
        listeners.append((("metrics", "listen"), spec.metrics.listen))
    seen: dict[int, Loc] = {}
    for loc, listen in listeners:
        _, port = split_listen(listen)
        if port in seen:
            other = ".".join(str(p) for p in seen[port])
            out.append((loc, f"port {port} is already used by {other}"))
        else:
            seen[port] = loc

    out += _non_loopback(spec)
    aws = spec.aws_or_default
    ws = spec.workspace
    if spec.grafana is not None and spec.grafana.enabled and ws is None:
        out.append(
            (("grafana", "enabled"), "Grafana queries the workspace: add a workspace section")
        )
    if ws is not None and aws.mode == "observe" and ws.deletion == "delete":
        out.append(
            (
                ("workspace", "deletion"),
                "aws.mode: observe changes nothing, so deletion: delete "
                "cannot apply; use deletion: retain",
            )
        )
    if ws is not None and ws.id is not None and ws.kms_key_arn is not None:
        out.append(
            (
                ("workspace", "kms_key_arn"),
                "kms_key_arn is set only when ampd creates the "
                "workspace; an adopted workspace (id) keeps its own key",
            )
        )
    if ws is not None and ws.logging is not None and ws.logging.log_group_arn is None:
        out.append((("workspace", "logging", "log_group_arn"), "logging needs log_group_arn"))
    if ws is not None and ws.logging is not None and ws.logging.log_group_arn is not None:
        arn = ws.logging.log_group_arn
        if not LOG_GROUP_ARN.fullmatch(arn):
            hint = (
                " (AMP needs the ARN ending in ':*')" if LOG_GROUP_ARN.fullmatch(arn + ":*") else ""
            )
            out.append(
                (
                    ("workspace", "logging", "log_group_arn"),
                    f"{arn!r} is not a CloudWatch Logs log group ARN{hint}",
                )
            )
    prom = spec.prometheus
    if prom is not None and prom.enabled and prom.remote_write is not None:
        if ws is None:
            out.append(
                (
                    ("prometheus", "remote_write"),
                    "remote_write needs a workspace section to "
                    "write to (or set remote_write: null for a local-only Prometheus)",
                )
            )
        if prom.remote_write.signing == "proxy" and spec.proxy is None:
            out.append(
                (("prometheus", "remote_write", "signing"), "signing: proxy needs a proxy section")
            )
        if (
            prom.remote_write.signing == "proxy"
            and spec.proxy is not None
            and (spec.proxy.enabled is False)
        ):
            out.append((("proxy", "enabled"), "remote_write signing: proxy needs the proxy on"))
    if prom is not None:
        for i, job in enumerate(prom.scrape_configs):
            if job.job in BUILTIN_JOBS:
                out.append(
                    (
                        ("prometheus", "scrape_configs", i, "job"),
                        f"{job.job!r} is the name of a job ampd adds itself "
                        f"({', '.join(BUILTIN_JOBS)}); choose another name",
                    )
                )
            for k, target in enumerate(job.targets):
                if "/" in target:  # Prometheus' config check: "... is not a valid hostname"
                    out.append(
                        (
                            ("prometheus", "scrape_configs", i, "targets", k),
                            f"target {target!r}: a host name has no '/' (Prometheus refuses "
                            "it); the path goes in metrics_path",
                        )
                    )
    out += _ha_labels(spec)
    out += _derived_labels(spec)
    if prom is not None and prom.instance_labels and prom.remote_write is None:
        out.append(
            (
                ("prometheus", "instance_labels"),
                "instance labels are added to remote-written "
                "series only; they do nothing without remote_write",
            )
        )
    if spec.grafana is not None and spec.grafana.enabled:
        ds = spec.grafana.datasource
        if ds.via == "proxy" and spec.proxy is None:
            out.append((("grafana", "datasource", "via"), "via: proxy needs a proxy section"))
    if spec.iam is not None and spec.iam.reader is not None:
        if "writer" in spec.iam.reader.trusted and spec.iam.writer is None:
            out.append((("iam", "reader", "trusted"), "trusts 'writer' but there is no iam.writer"))
        if spec.iam.reader.trusted == []:
            out.append((("iam", "reader", "trusted"), "nobody could assume the reader role"))
    if (
        spec.proxy is not None
        and spec.proxy.implementation == "aws-sigv4-proxy"
        and spec.proxy.binary is None
    ):
        out.append(
            (
                ("proxy", "binary"),
                "implementation: aws-sigv4-proxy needs binary: the path "
                "of the aws-sigv4-proxy executable",
            )
        )
    if aws.endpoint_url is not None and not aws.endpoint_url.startswith(("https://", "http://")):
        out.append((("aws", "endpoint_url"), "must be an http(s):// URL"))
    if aws.data_plane_url is not None:
        scheme, sep, rest = aws.data_plane_url.partition("://")
        if scheme not in ("http", "https") or not sep:
            out.append((("aws", "data_plane_url"), "must be an http(s):// URL"))
        elif "/" in rest.rstrip("/"):
            out.append(
                (
                    ("aws", "data_plane_url"),
                    "must be scheme://host[:port] only: the paths "
                    "stay /workspaces/<id>/api/v1/..., as on AMP",
                )
            )
    return out
