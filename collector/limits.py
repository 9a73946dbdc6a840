"""A byte budget for request bodies being received, decoded and spooled (bounded memory)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from llmloop.collector.errors import Overloaded


class InflightBudget:
    """Bytes of request bodies in memory at once, across both receivers; past it, Overloaded."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._used = 0
        self._lock = threading.Lock()

    def take(self, n: int, own: int = 0) -> None:
        """Reserve `n` more bytes for a request already holding `own`; a request alone in flight
        is let through whatever its size (the body limit bounds it), so it cannot be refused forever."""
        with self._lock:
            if self._used > own and self._used + n > self.max_bytes:
                raise Overloaded(f"{self._used} bytes of requests in flight (budget {self.max_bytes})")
            self._used += n

    def give(self, n: int) -> None:
        with self._lock:
            self._used -= n

    @contextmanager
    def hold(self, n: int) -> Iterator[None]:
        """Reserve `n` bytes for the duration of the block."""
        self.take(n)
        try:
            yield
        finally:
            self.give(n)
