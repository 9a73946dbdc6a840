"""GenAI metric instruments, fed off the app's request path.

Recording one histogram value costs the OTel SDK ~18 µs on the reference machine (it cleans and hashes
the attributes each time); a call records 3 or 4 values. So a finished call only appends one tuple to a
bounded queue (well under 1 µs), and the values reach the histograms when a metric reader collects
(an observable instrument's callback drains the queue first, in the reader's thread) or, under load,
from a small daemon thread woken once `DRAIN_AT` calls are pending — the way `BatchSpanProcessor`
keeps span export off the request path. If nothing ever collects (no SDK meter provider), the queue
keeps the newest `MAX_PENDING` calls and counts what it drops.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics

from llmloop.semconv import attributes as A
from llmloop.semconv import metrics as M

log = logging.getLogger("llmloop.instrumentation")

MAX_PENDING = 8192
"""Calls kept waiting for a collection before the oldest are dropped."""

DRAIN_AT = 512
"""Pending calls that wake the drain thread."""

Pending = tuple[float, float | None, int | None, int | None, dict[str, Any]]
"""(duration s, time to first chunk s or None, input tokens, output tokens, metric attributes)."""


def _histogram(meter: metrics.Meter, name: str, unit: str, description: str, buckets: tuple[float, ...]) -> Any:
    try:
        return meter.create_histogram(name, unit=unit, description=description,
                                      explicit_bucket_boundaries_advisory=list(buckets))
    except TypeError:  # opentelemetry-api without bucket advice
        return meter.create_histogram(name, unit=unit, description=description)


_shared: dict[int, tuple[Any, GenAIMetrics]] = {}
_shared_lock = threading.Lock()


def metrics_for(meter: metrics.Meter) -> GenAIMetrics:
    """The one `GenAIMetrics` of `meter` (an SDK meter refuses a second instrument of the same name)."""
    with _shared_lock:
        entry = _shared.get(id(meter))
        if entry is None or entry[0] is not meter:
            entry = _shared[id(meter)] = (meter, GenAIMetrics(meter))
        return entry[1]


class GenAIMetrics:
    """The three GenAI client histograms, and the queue that feeds them (one per meter: `metrics_for`)."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.duration = _histogram(meter, M.CLIENT_OPERATION_DURATION, "s", "GenAI operation duration.",
                                   M.DURATION_BUCKETS)
        self.token_usage = _histogram(meter, M.CLIENT_TOKEN_USAGE, "{token}",
                                      "Number of input and output tokens used.", M.TOKEN_BUCKETS)
        self.time_to_first_chunk = _histogram(meter, M.CLIENT_TIME_TO_FIRST_CHUNK, "s",
                                              "Time to receive the first chunk of a streamed response.",
                                              M.TIME_TO_FIRST_CHUNK_BUCKETS)
        self.pending: collections.deque[Pending] = collections.deque(maxlen=MAX_PENDING)
        self.dropped = 0
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        try:
            meter.create_observable_gauge("llmloop.instrumentation.pending_metrics", callbacks=[self._on_collect],
                                          description="Drains llmloop's queued GenAI measurements at collection.")
        except Exception:
            log.debug("llmloop: no observable instruments; metrics are drained by the thread only", exc_info=True)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def add(self, item: Pending) -> None:
        """Queue one finished call (constant time, never blocks)."""
        pending = self.pending
        if len(pending) >= MAX_PENDING:
            self.dropped += 1
        pending.append(item)
        if len(pending) >= DRAIN_AT and not self._wake.is_set():
            self._ensure_thread()
            self._wake.set()

    def drain(self) -> int:
        """Record every queued call into the histograms; returns how many."""
        count = 0
        pending = self.pending
        while True:
            try:
                duration, ttfc, tokens_in, tokens_out, attrs = pending.popleft()
            except IndexError:
                return count
            count += 1
            try:
                self.duration.record(duration, attrs)
                if ttfc is not None:
                    self.time_to_first_chunk.record(ttfc, attrs)
                if tokens_in is not None or tokens_out is not None:
                    base = {k: v for k, v in attrs.items() if k != A.ERROR_TYPE}
                    if tokens_in is not None:
                        self.token_usage.record(tokens_in, {**base, A.GEN_AI_TOKEN_TYPE: "input"})
                    if tokens_out is not None:
                        self.token_usage.record(tokens_out, {**base, A.GEN_AI_TOKEN_TYPE: "output"})
            except Exception:
                log.debug("llmloop: could not record a measurement", exc_info=True)

    def _on_collect(self, options: Any) -> Iterable[Any]:
        self.drain()
        if self.dropped:
            log.warning("llmloop: %d GenAI measurements were dropped while waiting for a metric collection",
                        self.dropped)
            self.dropped = 0
        return ()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llmloop-metrics", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.drain()

    def _after_fork(self) -> None:
        self._thread = None
        self._wake = threading.Event()
        self._lock = threading.Lock()
