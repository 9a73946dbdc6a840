"""Batch writer: acknowledged OTLP requests go through the spool into ClickHouse in large inserts.

Each closed spool segment is one INSERT of length-delimited protobuf requests into a Null ingest
table (`Signal.table`); its materialized view (`queries/schema/`) explodes them into rows. An
embedded store reads the segment file in place (`INSERT ... FROM INFILE`); a server gets its bytes.
Several worker threads insert in parallel (ClickHouse works on one batch per thread). A failed
insert is retried with backoff and never dropped; meanwhile the spool keeps accepting until its
disk budget, past which receivers answer with a retryable status.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.client import Client

from llmloop.collector.decode import Signal
from llmloop.collector.protoschema import format_schema
from llmloop.collector.spool import Segment, Spool, records
from llmloop.collector.store import retry_delays

log = logging.getLogger("llmloop.writer")

# ClickHouse error names meaning the input cannot be parsed. Everything else (network errors,
# TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, TIMEOUT_EXCEEDED, ...) is the store's state: retried.
_INPUT_ERRORS = ("CANNOT_PARSE", "PROTOBUF", "CANNOT_READ_ALL_DATA", "ATTEMPT_TO_READ_AFTER_EOF",
                 "INCORRECT_DATA", "TOO_LARGE_STRING_SIZE", "TOO_LARGE_ARRAY_SIZE", "UNKNOWN_FORMAT")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")
# A partial segment of a quarter batch or more is inserted once its requests stop coming for this long, rather
# than at the flush interval: at the end of a burst, the last segment is not left waiting while writers idle.
QUIET_S = 0.1
_GLOB = re.compile(r"[*?{}]")  # a file name with these is a pattern to FROM INFILE
# Settings that only make an insert cheaper, used where the store knows them (a server older than the
# engine chDB embeds may not). ClickHouse analyses every ingest view again at each insert (~0.15 s of
# CPU, bench/README.md); query plan optimizations and the AND-chain rewrite are a quarter of that, and
# do nothing for these views, which read no table but a few rows of `conventions`.
_TUNING = {
    # No in-block ReplacingMergeTree collapse at insert: duplicates come from client retries in
    # other requests, so merges and FINAL collapse them anyway; skipping it saves ~10 us/span.
    "optimize_on_insert": 0,
    "query_plan_enable_optimizations": 0,
    "optimize_and_compare_chain": 0,
}


def tuned(client: Client, settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with those of `_TUNING` that the store behind `client` knows."""
    known = client.query("SELECT name FROM system.settings WHERE name IN {names:Array(String)}",
                         parameters={"names": list(_TUNING)}).result_columns
    return {**settings, **{name: _TUNING[name] for name in (known[0] if known else [])}}


def _schema_settings(signal: Signal, local_dir: Path | None) -> dict[str, str]:
    """How ClickHouse finds the OTLP schema: a file beside an embedded store, else inline text.

    (Inline schemas make an embedded engine cache them under the process's working directory.)
    """
    schema, message = format_schema(signal.request.DESCRIPTOR, signal.raw_fields)
    if local_dir is None:
        return {"format_schema": schema, "format_schema_message_name": message, "format_schema_source": "string"}
    local_dir.mkdir(parents=True, exist_ok=True)
    path = local_dir / f"otlp_{signal.name}.proto"
    if not path.exists() or path.read_text() != schema:
        path.write_text(schema)
    return {"format_schema": f"{path}:{message}"}


class Writer:
    """Spools accepted requests of one signal and inserts them into `<database>.<signal.table>`."""

    def __init__(
        self,
        signal: Signal,
        connect: Callable[[], Client],
        spool_dir: Path,
        database: str = "llmloop",
        batch_items: int = 20_000,
        flush_interval: float = 1.0,
        spool_bytes: int = 1024**3,
        workers: int = 2,
        fsync: bool = True,
        local_store: bool = False,
    ) -> None:
        self.signal = signal
        self.table = f"{database}.{signal.table}"
        self.settings = {
            **_schema_settings(signal, spool_dir if local_store else None),
            "deduplicate_blocks_in_dependent_materialized_views": 1,
        }
        self.flush_interval = flush_interval
        self.spool = Spool(spool_dir / signal.name, batch_items, spool_bytes, fsync)
        # An embedded store reads segment files in place, unless their path would be taken as a pattern.
        self.in_place = local_store and not _GLOB.search(str(self.spool.directory.resolve()))
        self._connect = connect
        self._closing = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"writer-{signal.name}-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, payload: bytes, items: int) -> None:
        """Make one request durable in the spool; raise Overloaded past the spool's budget."""
        if items:
            self.spool.append(payload, items)

    def stop(self, timeout: float = 30.0) -> None:
        """Close the open segment, insert what the store takes within `timeout`, stop the workers.

        What is not inserted by then stays in the spool and is replayed at the next start.
        """
        self.spool.close()
        self._closing.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = self.spool.pending_bytes()
        if left:
            log.warning("%s: %d bytes stay in the spool for the next start", self.signal.name, left)

    def _run(self) -> None:
        connected = self._client()
        if connected is None:
            return
        client, settings = connected
        while True:
            segment = self.spool.take(timeout=0.1, max_age=self.flush_interval, quiet=QUIET_S)
            if segment is None:
                if self._closing.is_set():
                    return
                continue
            if not self._insert(client, settings, segment):
                self.spool.put_back(segment)
                return
            self.spool.done(segment)

    def _client(self) -> tuple[Client, dict[str, Any]] | None:
        """A store client and the insert settings for it, retried while the store is unreachable;
        None if shutdown came first."""
        for delay in retry_delays(0.2):
            try:
                client = self._connect()
                return client, tuned(client, self.settings)
            except Exception as exc:  # the store may be down right now; the spool holds the data
                log.warning("%s writer cannot reach the store, retrying in %.1fs: %s", self.signal.name, delay, exc)
                if self._closing.wait(delay):
                    return None

    def _insert(self, client: Client, settings: dict[str, Any], segment: Segment) -> bool:
        """Insert one segment, retrying with backoff; False if shutdown came first.

        When the store refuses the segment's *data* (a parse error, not an outage or overload),
        retrying the same bytes cannot help: the segment is tried request by request, and the
        requests the store rejects are moved to `rejected/` with an error log instead of blocking
        every later segment (a damaged spool file, or input ClickHouse cannot read).
        """
        delays, rejected_input = retry_delays(0.2), False
        while True:
            started, source = time.perf_counter(), None
            try:
                source = self._source(segment, in_place=self.in_place and not rejected_input)
                if rejected_input:
                    assert isinstance(source, bytes)
                    self._insert_records(client, settings, segment, source)
                else:
                    self._raw_insert(client, settings, source, segment.token)
            except Exception as exc:  # the store (or the disk) failing must not lose the segment: retry it
                if source is None and isinstance(exc, FileNotFoundError):  # deleted by hand: nothing to retry
                    log.error("spool segment %s is gone, its requests with it: %s", segment.path.name, exc)
                    return True
                rejected_input, delay = rejects_input(exc), next(delays)
                log.warning("insert of %s into %s failed, retrying in %.1fs: %.300s",
                            segment.path.name, self.table, delay, exc)
                if self._closing.wait(delay):
                    return False
                continue
            log.debug("inserted %s (%d items, %d bytes) in %.3fs", segment.path.name, segment.items,
                      segment.size, time.perf_counter() - started)
            return True

    @staticmethod
    def _source(segment: Segment, in_place: bool) -> Path | bytes:
        """What to insert: the segment's file itself if `in_place` and it holds just the spool's whole
        requests (see Spool._fail_locked), else those requests' bytes."""
        if in_place and segment.path.stat().st_size == segment.size:
            return segment.path
        with open(segment.path, "rb") as file:
            return file.read(segment.size)

    def _raw_insert(self, client: Client, settings: dict[str, Any], source: Path | bytes, token: str) -> None:
        """Insert length-delimited requests: a file the embedded engine reads in place (saving the copies
        into the client's temporary file, ~1.5 us per span; bench/README.md), or bytes."""
        settings = {**settings, "insert_deduplication_token": token}
        if isinstance(source, bytes):
            client.raw_insert(self.table, insert_block=source, fmt="Protobuf", settings=settings)
            return
        # FROM INFILE and SETTINGS take literals only (no query parameters): quoted by clickhouse-connect.
        clause = ", ".join(f"{name} = {format_query_value(value)}" for name, value in settings.items())
        client.command(f"INSERT INTO {self.table} FROM INFILE {format_query_value(str(source))} "
                       f"SETTINGS {clause} FORMAT Protobuf")

    def _insert_records(self, client: Client, settings: dict[str, Any], segment: Segment, data: bytes) -> None:
        """Insert `data` one request at a time; quarantine those whose data the store rejects.

        Any other failure (outage, overload) is raised: the segment is retried later, and the
        requests already in are then dropped by their deduplication tokens.
        """
        rejected: list[tuple[int, bytes, Exception]] = []
        for index, record in enumerate(records(data)):
            try:
                self._raw_insert(client, settings, record, f"{segment.token}-{index}")
            except Exception as exc:  # sorted by rejects_input: bad data is kept aside, the rest raised
                if not rejects_input(exc):
                    raise
                rejected.append((index, record, exc))
        quarantine = self.spool.directory / "rejected"
        quarantine.mkdir(exist_ok=True)
        for index, record, exc in rejected:
            path = quarantine / f"{segment.token}-{index}{segment.path.suffix}"
            path.write_bytes(record)
            log.error("the store rejects request %d of %s; kept in %s: %.300s", index, segment.path.name, path, exc)


def rejects_input(exc: Exception) -> bool:
    """Whether a store error means "this data cannot be read" rather than "try again later"."""
    name = getattr(exc, "name", None) or "".join(_ERROR_NAME.findall(str(exc))[-1:])
    return bool(name) and any(part in name for part in _INPUT_ERRORS)
