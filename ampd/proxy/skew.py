"""Clock skew between this host and AWS, as the upstream reports it.

AWS refuses a SigV4 signature whose time is more than 5 minutes away from its own clock,
with a 403. Prometheus treats every 4xx as final and drops the batch, so a host whose
clock drifted would lose every sample while looking healthy. The proxy therefore
recognises that refusal, takes AWS's time from the ``Date`` header of the same answer,
and signs "now + offset" from then on (ampd.proxy.relay). These are the pure parts. The
daemon turns an offset above 60 s into a condition (ampd.local.report.proxy).
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

__all__ = ["is_skew_refusal", "offset_from_date"]

# What AWS says (JSON ``message`` of AMP, XML ``Code`` of S3-style services).
_MARKERS = (
    "RequestTimeTooSkewed",
    "Signature expired",
    "Signature not yet current",
)


def is_skew_refusal(status: int, body: bytes) -> bool:
    """Whether an upstream answer is AWS refusing the signature's time."""
    if status != 403:
        return False
    text = body[:4096].decode("utf-8", "replace")
    return any(marker in text for marker in _MARKERS)


def offset_from_date(headers: Mapping[str, str], now: float) -> float | None:
    """Upstream time minus ``now`` from an HTTP ``Date`` header (whole seconds), or None
    when there is no usable header."""
    value = headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        return None
    return when.timestamp() - now
