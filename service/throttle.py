"""Slow down guessing of the reindex token: a per-process token bucket of failed attempts.

Each client network (the truncated address of ``service.middleware.truncate_address``, never
the full IP) may fail ``capacity`` times in a row; then one more attempt is allowed every
``refill_seconds``. While a network's bucket is empty every attempt from it is refused with
429, the right token included: answering a right guess differently would let guessing go on.
Successful attempts cost nothing. State is per worker process (nothing is shared across a
fork), so with N workers a network gets at most N times the rate; behind the nginx of
``deploy/`` its ``limit_req`` applies per client first, and here every client is the proxy's
address, so this bucket is a global backstop.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

#: Failed attempts allowed in a burst, then one every REFILL_SECONDS (10 a minute).
CAPACITY = 10
REFILL_SECONDS = 6.0
#: Networks remembered at most; the least recently seen are forgotten first.
MAX_KEYS = 10_000


def monotonic() -> float:
    """The clock the throttle reads (a module function, so a test can replace it)."""
    return time.monotonic()


class FailureThrottle:
    """Token buckets of failed attempts keyed by client network; thread-safe."""

    def __init__(self, capacity: int = CAPACITY, refill_seconds: float = REFILL_SECONDS,
                 max_keys: int = MAX_KEYS, clock: Callable[[], float] | None = None):
        self.capacity = capacity
        self.refill_seconds = refill_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else monotonic()

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.capacity), now))
        return min(float(self.capacity), tokens + (now - at) / self.refill_seconds)

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or None when it may try now."""
        with self._lock:
            now = self._now()
            tokens = self._tokens(key, now)
            if tokens >= 1.0:
                return None
            return max(1, math.ceil((1.0 - tokens) * self.refill_seconds))

    def failed(self, key: str) -> None:
        """Record a failed attempt by ``key``: it costs one token."""
        with self._lock:
            now = self._now()
            tokens = self._tokens(key, now) - 1.0
            self._buckets[key] = (max(tokens, 0.0), now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)


_shared_lock = threading.Lock()
_shared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def throttle_for(owner: object) -> FailureThrottle:
    """The one throttle of ``owner`` (an app's job store), so both reindex routes share it."""
    with _shared_lock:
        found = _shared.get(owner)
        if found is None:
            found = _shared[owner] = FailureThrottle()
        return found
