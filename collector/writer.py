"""Batch writer: accepted OTLP requests are queued, concatenated and inserted in large batches.

Each batch is one INSERT of length-delimited protobuf requests into a Null ingest table; the
materialized views in `queries/schema/0004_otlp_ingest.sql` explode them into rows. Several
worker threads insert in parallel (ClickHouse works on one batch per thread). A full queue is
refused up front (the receivers answer with a retryable status); a failed insert is retried
with backoff and never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from google.protobuf.internal.encoder import _VarintBytes

from llmloop.collector.decode import Signal
from llmloop.collector.errors import Overloaded
from llmloop.collector.protoschema import format_schema

log = logging.getLogger("llmloop.writer")


class Writer:
    """Queues decoded requests of one signal and inserts them into `<database>.otlp_<signal>_in`."""

    def __init__(
        self,
        signal: Signal,
        connect: Callable[[], Client],
        database: str = "llmloop",
        batch_items: int = 50_000,
        flush_interval: float = 1.0,
        queue_bytes: int = 256 * 1024 * 1024,
        workers: int = 2,
    ) -> None:
        self.signal = signal
        self.table = f"{database}.otlp_{signal.name}_in"
        schema, message = format_schema(signal.request.DESCRIPTOR)
        self.settings = {
            "format_schema": schema,
            "format_schema_message_name": message,
            "format_schema_source": "string",
        }
        self.batch_items = batch_items
        self.flush_interval = flush_interval
        self.queue_bytes = queue_bytes
        self._connect = connect
        self._queue: deque[tuple[bytes, int]] = deque()
        self._queued_bytes = 0
        self._queued_items = 0
        self._cond = threading.Condition()
        self._closing = False
        self._inflight = 0
        self.inserted = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"writer-{signal.name}-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, payload: bytes, items: int) -> None:
        """Queue one request; raise Overloaded when the queue is at its byte budget."""
        if not items:
            return
        with self._cond:
            if self._closing:
                raise Overloaded("the collector is shutting down", retry_after=5)
            if self._queued_bytes and self._queued_bytes + len(payload) > self.queue_bytes:
                raise Overloaded(f"write queue full ({self._queued_bytes} bytes waiting for the store)")
            self._queue.append((payload, items))
            self._queued_bytes += len(payload)
            self._queued_items += items
            if self._queued_items >= self.batch_items:
                self._cond.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Flush everything queued, then stop the workers."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            if self._queue or self._inflight:
                log.error("%s: %d queued requests not written at shutdown", self.signal.name, len(self._queue))

    def pending(self) -> int:
        """Items accepted but not yet inserted."""
        with self._cond:
            return self._queued_items + self._inflight

    def _take(self) -> list[tuple[bytes, int]] | None:
        """Wait for a full batch, the flush interval, or shutdown; None when done."""
        with self._cond:
            deadline = time.monotonic() + self.flush_interval
            while self._queued_items < self.batch_items and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0 and self._queue:
                    break
                self._cond.wait(left if left > 0 else self.flush_interval)
                if left <= 0:
                    deadline = time.monotonic() + self.flush_interval
            if not self._queue:
                return None if self._closing else []
            batch, count = [], 0
            while self._queue and count < self.batch_items:
                payload, items = self._queue.popleft()
                batch.append((payload, items))
                count += items
                self._queued_bytes -= len(payload)
            self._queued_items -= count
            self._inflight += count
            return batch

    def _run(self) -> None:
        client = self._connect()
        while True:
            batch = self._take()
            if batch is None:
                return
            if batch:
                self._insert(client, batch)

    def _insert(self, client: Client, batch: list[tuple[bytes, int]]) -> None:
        data = b"".join(_VarintBytes(len(payload)) + payload for payload, _ in batch)
        count = sum(items for _, items in batch)
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                client.raw_insert(self.table, insert_block=data, fmt="Protobuf", settings=self.settings)
                break
            except Exception as exc:  # the store's failure must not lose the batch: retry
                log.warning("insert of %d %s into %s failed, retrying in %.1fs: %s",
                            count, self.signal.name, self.table, delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        log.debug("inserted %d %s (%d bytes) in %.3fs", count, self.signal.name, len(data),
                  time.perf_counter() - started)
        with self._cond:
            self._inflight -= count
            self.inserted += count
