"""The viewer's one in-memory cache: least recently used first out, bounded by weight."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class LRU:
    """A thread-safe least-recently-used cache bounded by the total weight of what it
    holds; each item weighs 1 unless told otherwise, so by default it bounds their number."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.weight = 0
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put(self, key: Any, value: Any, weight: int = 1) -> None:
        if weight > self.capacity:
            return  # heavier than the whole cache: used once, not kept
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self._items[key] = (value, weight)
            self.weight += weight
            while self.weight > self.capacity:
                _, (_, dropped) = self._items.popitem(last=False)
                self.weight -= dropped
