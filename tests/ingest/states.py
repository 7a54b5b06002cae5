"""The state documents the ingest tests plan with: a host in us-east-1 that runs its own
Prometheus (on a free loopback port, without remote write), under the supervisor, with
ampd's own /metrics off so that only the jobs a test names are estimated."""

from __future__ import annotations

from typing import Any

from tests.harness.fixtures_local import free_port


def host_state(prometheus: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """``prometheus``: more of its section; ``extra``: more top-level sections."""
    return {
        "version": 1,
        "aws": {"region": "us-east-1"},
        "prometheus": {
            "listen": f"127.0.0.1:{free_port()}",
            "remote_write": None,
            **(prometheus or {}),
        },
        "metrics": {"enabled": False},
        "runtime": "supervisor",
        **extra,
    }
