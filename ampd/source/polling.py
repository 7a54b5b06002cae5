"""When a remote state is looked at next (pure): its ``poll_interval`` with +-20 %
jitter; after looks that could not read it, 5 s, 10 s, 20 s, ... with +-50 % jitter
(a fleet that boots together must not retry together), never longer than the interval."""

from __future__ import annotations

import random

JITTER = 0.2
DEFAULT_INTERVAL = 60.0
RETRY_BASE = 5.0  # an unreadable source is looked at again after 5 s, 10 s, ... (capped)


def next_wait(interval: float, failures: int, rng: random.Random) -> float:
    """Seconds to the next look; ``failures``: looks in a row that could not read."""
    if failures == 0:
        return interval * (1 + rng.uniform(-JITTER, JITTER))
    wait = min(interval, RETRY_BASE * 2.0 ** min(failures - 1, 10))
    return wait * rng.uniform(0.5, 1.5)
