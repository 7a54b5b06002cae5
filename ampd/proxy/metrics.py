"""The proxy's own metrics, served on its ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["REFUSAL_REASONS", "ProxyMetrics"]

# The ``reason`` values of ampd_proxy_refused_total, all present from the start (at 0).
REFUSAL_REASONS = ("uid", "peer_unknown", "path", "method", "too_large", "no_workspace")


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ampd_proxy_requests",
            "Requests handled by the signing proxy, by path kind and status code",
            ["path_kind", "code"],
            registry=registry,
        )
        self.refused = Counter(
            "ampd_proxy_refused",
            "Requests the proxy refused to sign: uid (a local user not allowed), "
            "peer_unknown (no live local socket owns the connection), path, method, too_large, "
            "no_workspace (no workspace id known yet: 503)",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:
            self.refused.labels(reason=reason)
        self.request_bytes = Counter(
            "ampd_proxy_request_bytes", "Request body bytes forwarded upstream", registry=registry
        )
        self.response_bytes = Counter(
            "ampd_proxy_response_bytes",
            "Response body bytes streamed back to clients",
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "ampd_proxy_upstream_latency_seconds",
            "Time from sending a signed request upstream to receiving its response headers",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.signing_errors = Counter(
            "ampd_proxy_signing_errors",
            "Requests that could not be signed (no credentials, refresh failed)",
            registry=registry,
        )
        self.clock_offset = Gauge(
            "ampd_proxy_clock_offset_seconds",
            "The upstream's clock minus this host's, learnt from AWS refusing a signature's "
            "time; requests are signed at local time plus this offset",
            registry=registry,
        )
        self.clock_corrections = Counter(
            "ampd_proxy_clock_corrections",
            "Requests re-signed once after the upstream refused the signature's time",
            registry=registry,
        )
        self.clock_uncorrected = Counter(
            "ampd_proxy_clock_uncorrected",
            "Requests answered 503 because the signature's time could not be corrected "
            "(no Date header, or still refused after re-signing)",
            registry=registry,
        )
