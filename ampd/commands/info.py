"""``ampd version``: ampd's version, the Prometheus/Grafana versions found, the runtime."""

from __future__ import annotations

import sys

from ampd import __version__
from ampd.gateways.grafana import grafana_version
from ampd.gateways.promtool import binary_version
from ampd.gateways.systemd import running_under_systemd


def version_info(
    prometheus: str = "/usr/bin/prometheus", grafana: str = "/usr/sbin/grafana-server"
) -> dict[str, str]:
    def fmt(v: tuple[int, int, int] | None) -> str:
        return ".".join(map(str, v)) if v else "not found"

    return {
        "ampd": __version__,
        "python": sys.version.split()[0],
        "prometheus": fmt(binary_version(prometheus)),
        "grafana": fmt(grafana_version(grafana)),
        "runtime": "systemd" if running_under_systemd() else "supervisor",
    }
