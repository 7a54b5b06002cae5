"""``ampd version``: ampd's version, the Prometheus/Grafana versions found, the runtime."""

from __future__ import annotations

import importlib
import sys

from ampd import __version__
from ampd.gateways.promtool import binary_version


def version_info() -> dict[str, str]:
    def fmt(v: tuple[int, int, int] | None) -> str:
        return ".".join(map(str, v)) if v else "not found"

    runtime = "supervisor"
    try:
        systemd = importlib.import_module("ampd.gateways.systemd")
        if systemd.running_under_systemd():
            runtime = "systemd"
    except ImportError:
        pass
    return {
        "ampd": __version__,
        "python": sys.version.split()[0],
        "prometheus": fmt(binary_version("/usr/bin/prometheus")),
        "grafana": fmt(binary_version("/usr/sbin/grafana-server")),
        "runtime": runtime,
    }
