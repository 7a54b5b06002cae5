"""Pure: the two jobs ampd adds (Prometheus itself and ampd's own /metrics), when they can
be scraped and when they cannot.

A dry scrape of a process that has just started counts low: Prometheus' own series grow
with its first scrapes, remote-write sends and requests (Debian's 2.42 in agent mode:
179 series 3 s after a start, 283 once settled), ampd's with its first pass (a status
gauge per resource). So a count is kept only from a process that has settled, and only while that
process is the same one.

Before either runs (the first ``ampd plan`` on a fresh host) nothing can be scraped; the
estimate then comes from a model, and says so:

- Prometheus: measured from Debian's packages in agent mode, configured as ampd renders
  it (its own job, the state's jobs, one remote-write queue to an endpoint that accepts),
  asked what ampd asks of it (``/-/ready``, ``/api/v1/targets``, ``/metrics``: each
  handler adds its own request series), after it settled. A job adds the same series
  whatever its number of targets (the scrape pool's); a remote-write queue adds its own.
  Per release; how it was measured is in docs/benchmarks.md (ingest section).
- ampd: its registry (``ampd.daemon.metrics``): what exists before the first pass, a
  status gauge per resource and status value, and two ingest gauges per estimated job
  (held to the registry by ``tests/ingest/test_builtin_model.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ampd.ingest.exposition import sample_sum
from ampd.spec.models import StateSpec

__all__ = [
    "AMPD_FIXED_SERIES",
    "AMPD_PER_JOB",
    "AMPD_PER_RESOURCE",
    "PROMETHEUS_MODELS",
    "PromModel",
    "ampd_model",
    "prometheus_model",
    "settled",
    "spec_resources",
]


@dataclass(frozen=True)
class PromModel:
    """A Prometheus release's own series in agent mode, settled."""

    own: int  # its own job only, with one remote-write queue
    per_job: int  # each further scrape job (any number of targets)
    per_queue: int  # the remote-write queue's share of ``own``


# Measured 2026-12-07 with Debian's binaries (agent mode, 2 s interval, 40 s, ampd's
# probes every 2 s): 2.42.0+ds-5+deb12u1 (bookworm) and 2.53.3+ds1-2 (trixie); 0, 2 and
# 4 extra jobs (and 1 or 3 targets a job: no difference), with and without remote_write.
PROMETHEUS_MODELS: dict[tuple[int, int], PromModel] = {
    (2, 42): PromModel(own=283, per_job=20, per_queue=58),
    (2, 53): PromModel(own=472, per_job=21, per_queue=56),
}

# ampd.daemon.metrics after a pass: histogram (12 buckets, +Inf, count, sum, created),
# 3 outcomes x (total, created), last success, spec valid, build info, 2 notify counters.
AMPD_FIXED_SERIES = 27
AMPD_PER_RESOURCE = 8  # ampd_resource_sync (3 values) + ampd_resource_health (5 values)
AMPD_PER_JOB = 2  # ampd_ingest_estimated_{samples_per_second,series}{job}
AMPD_INGEST_TOTALS = 3  # measured rate, active series, dollars: when known

PROMETHEUS_SETTLE_SCRAPES = 3  # settled after this many of its slowest job's intervals
AMPD_SETTLE_PASSES = 2  # settled once this many passes were counted


def nearest_release(version: tuple[int, int, int]) -> tuple[int, int]:
    """The measured release nearest below ``version`` (the oldest for anything older)."""
    known = sorted(PROMETHEUS_MODELS)
    below = [k for k in known if k <= version[:2]]
    return below[-1] if below else known[0]


def prometheus_model(
    version: tuple[int, int, int] | None, jobs: int, remote_write: bool
) -> tuple[int, str] | None:
    """Prometheus' own series with ``jobs`` scrape jobs besides its own, and the basis
    said in the plan; None when its version is not known (no binary to ask)."""
    if version is None:
        return None
    release = nearest_release(version)
    m = PROMETHEUS_MODELS[release]
    series = m.own + m.per_job * jobs - (0 if remote_write else m.per_queue)
    ran = ".".join(map(str, version))
    basis = f"Prometheus {ran} in agent mode, modelled on Debian's {release[0]}.{release[1]}"
    return series, basis


def ampd_model(resources: int, jobs: int) -> tuple[int, str]:
    """ampd's own series after its first passes, for ``resources`` reconciled resources
    and ``jobs`` estimated jobs, and the basis said in the plan."""
    series = (
        AMPD_FIXED_SERIES + AMPD_PER_RESOURCE * resources + AMPD_PER_JOB * jobs + AMPD_INGEST_TOTALS
    )
    return series, f"ampd's registry with {resources} resources and {jobs} jobs"


def settled(job: str, body: str, now: float, slowest_interval: float) -> bool:
    """Whether a scrape of a built-in job shows a process past its first counts. ``now``:
    wall-clock seconds, compared with Prometheus' own ``process_start_time_seconds``
    (both from this host's clock)."""
    if job == "prometheus":
        start = sample_sum(body, "process_start_time_seconds")
        return start is not None and now - start >= PROMETHEUS_SETTLE_SCRAPES * slowest_interval
    passes = sample_sum(body, "ampd_reconcile_total")
    return passes is not None and passes >= AMPD_SETTLE_PASSES


def spec_resources(spec: StateSpec, can_sign: bool) -> int:
    """The resources a pass reconciles for ``spec`` (each gets ampd's status gauges), as
    the state's sections name them: the processes and their generated files, the
    workspace and what hangs off it, the IAM roles, policies and instance profile."""
    n = 0
    prom = spec.prometheus
    if prom is not None and prom.enabled:
        n += 3  # the process, prometheus.yml, prometheus.cmd.json
    if _proxy_runs(spec, can_sign):
        n += 3  # the process, proxy.json, sigv4-proxy.cmd.json
    if spec.grafana is not None and spec.grafana.enabled:
        n += 4  # the process, its command, the data source, the dashboards provider
    ws = spec.workspace
    if ws is not None:
        n += 2 + len(ws.rule_groups)  # the workspace and its configuration
        n += sum(x is not None for x in (ws.logging, ws.alertmanager, ws.query_logging))
        n += ws.resource_policy is not None
    if spec.iam is not None:
        n += 3 if spec.iam.writer is not None else 0  # role, policy, instance profile
        n += 2 if spec.iam.reader is not None else 0  # role, policy
    return n


def _proxy_runs(spec: StateSpec, can_sign: bool) -> bool:
    if spec.proxy is not None and spec.proxy.enabled != "auto":
        return spec.proxy.enabled is True
    prom = spec.prometheus
    rw = prom.remote_write if prom is not None and prom.enabled else None
    if rw is None or spec.workspace is None:
        return False
    return rw.signing == "proxy" or (rw.signing == "auto" and not can_sign)
