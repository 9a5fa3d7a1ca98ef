"""Caching: a bounded per-worker LRU of engine results, keyed by the served generation."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class ResponseCache:
    """A bounded, thread-safe LRU of engine results, one per worker; ``size`` 0 disables it.

    Keys start with the generation name, so a newly published generation never gets an
    answer computed from the previous one; the old entries simply age out.
    """

    def __init__(self, size: int):
        self.size = max(int(size), 0)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any], still_valid: Callable[[], bool]) -> Any:
        if not self.size:
            return compute()
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
        value = compute()
        if still_valid():  # the generation did not change while computing
            with self._lock:
                self._data[key] = value
                self._data.move_to_end(key)
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
