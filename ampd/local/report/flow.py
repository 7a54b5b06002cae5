"""RemoteWriteFlowing from evidence: Prometheus' own remote-storage counters (and the
proxy's upstream status codes), compared between passes. Never assumed."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ampd.core import ConditionStatus

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_CODE_RE = re.compile(r'code="(\d{3})"')

TOTAL = "prometheus_remote_storage_samples_total"
FAILED = "prometheus_remote_storage_samples_failed_total"
RETRIED = "prometheus_remote_storage_samples_retried_total"
PENDING = "prometheus_remote_storage_samples_pending"
PROXY_REQUESTS = "ampd_proxy_requests_total"


def families(text: str) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.setdefault(m.group(1), []).append((m.group(2) or "", value))
    return out


def total(fams: dict[str, list[tuple[str, float]]], name: str) -> float:
    return sum(v for _, v in fams.get(name, []))


@dataclass(frozen=True)
class Counters:
    sent: float
    failed: float
    retried: float
    pending: float
    upstream_codes: dict[str, float]


@dataclass(frozen=True)
class Verdict:
    status: ConditionStatus
    reason: str
    message: str
    native_unsigned: bool = False


def read_counters(prom_text: str, proxy_text: str | None) -> Counters:
    f = families(prom_text)
    codes: dict[str, float] = {}
    if proxy_text:
        for labels, value in families(proxy_text).get(PROXY_REQUESTS, []):
            if "remote_write" not in labels:
                continue
            m = _CODE_RE.search(labels)
            if m:
                codes[m.group(1)] = codes.get(m.group(1), 0.0) + value
    return Counters(total(f, TOTAL), total(f, FAILED), total(f, RETRIED), total(f, PENDING), codes)


def _delta(new: float, old: float) -> float:
    return new - old if new >= old else new  # a restart resets counters


class FlowTracker:
    """Compares counters with a baseline. Failures and accepted samples give a verdict at
    once; "nothing was sent" needs a whole ``window`` of silence (Prometheus sends in
    batches, so a short gap proves nothing). Between verdicts the last one stands."""

    def __init__(self, window: float = 30.0) -> None:
        self.window = window
        self.previous: Counters | None = None  # the baseline
        self.since: float | None = None  # when the baseline was taken
        self.last: Verdict | None = None

    def _rebase(self, counters: Counters, now: float | None, verdict: Verdict) -> Verdict:
        self.previous, self.since, self.last = counters, now, verdict
        return verdict

    def observe(
        self,
        prom_text: str | None,
        proxy_text: str | None,
        *,
        signing: str,
        now: float | None = None,
    ) -> Verdict:
        """``now`` (seconds, any clock) enables the window; without it every call closes one."""
        # Long on purpose: the remote-write evidence rules, in the order they are decided.
        if prom_text is None:
            return Verdict(
                ConditionStatus.UNKNOWN, "NoMetrics", "Prometheus /metrics did not answer"
            )
        counters = read_counters(prom_text, proxy_text)
        before = self.previous or Counters(0, 0, 0, 0, {})
        if self.previous is None:
            self.previous, self.since = Counters(0, 0, 0, 0, {}), now
        sent = _delta(counters.sent, before.sent)
        failed = _delta(counters.failed, before.failed)
        retried = _delta(counters.retried, before.retried)
        ok = sent - failed - retried
        bad_codes = {
            code: _delta(v, before.upstream_codes.get(code, 0.0))
            for code, v in counters.upstream_codes.items()
            if not code.startswith("2")
        }
        bad_codes = {c: n for c, n in bad_codes.items() if n > 0}
        why = ", ".join(f"{int(n)}x HTTP {c}" for c, n in sorted(bad_codes.items()))
        if failed > 0 or (ok <= 0 and retried > 0):
            detail = f"{int(failed)} samples failed, {int(retried)} retried since the last check"
            if why:
                detail += f"; upstream answered {why}"
            if "403" in bad_codes:
                detail += " (AMP refused the signature or the role lacks aps:RemoteWrite)"
            verdict = Verdict(
                ConditionStatus.FALSE,
                "SamplesRejected",
                detail,
                native_unsigned=signing == "native" and ok <= 0,
            )
            return self._rebase(counters, now, verdict)
        if ok > 0:
            verdict = Verdict(
                ConditionStatus.TRUE,
                "SamplesAccepted",
                f"{int(ok)} samples accepted since the last check",
            )
            return self._rebase(counters, now, verdict)
        elapsed = None if now is None or self.since is None else now - self.since
        if elapsed is not None and elapsed < self.window:
            return self.last or Verdict(
                ConditionStatus.UNKNOWN, "NoSamplesYet", "no samples sent yet"
            )
        if counters.pending > 0:
            span = f"in {elapsed:.0f}s" if elapsed is not None else "since the last check"
            verdict = Verdict(
                ConditionStatus.FALSE,
                "Stalled",
                f"{int(counters.pending)} samples pending and none sent {span}",
            )
            return self._rebase(counters, now, verdict)
        verdict = Verdict(ConditionStatus.UNKNOWN, "NoSamplesYet", "no samples sent yet")
        return self._rebase(counters, now, verdict)
