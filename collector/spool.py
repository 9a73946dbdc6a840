"""Write-ahead spool: append-only segment files of length-delimited OTLP requests.

A request is acknowledged only after its bytes are fsync'd into the open segment (concurrent
appenders share one fsync: group commit). A closed segment is exactly the input of one ClickHouse
`INSERT ... FORMAT Protobuf`, and its file name is that insert's deduplication token, so a segment
replayed after a crash (inserted, but not yet deleted) is not stored twice. On start-up, segments
left by a previous run are recovered: a torn tail (never acknowledged) is cut off, the rest is
queued for insertion.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.internal.decoder import _DecodeVarint
from google.protobuf.internal.encoder import _VarintBytes

from llmloop.collector.errors import Overloaded

log = logging.getLogger("llmloop.spool")

OPEN_SUFFIX = ".open"
SEGMENT_SUFFIX = ".otlp"


@dataclass
class Segment:
    """A closed segment file holding `items` items (-1 when recovered: not counted)."""

    path: Path
    items: int
    size: int

    @property
    def token(self) -> str:
        return self.path.stem


def records(data: bytes) -> Iterator[bytes]:
    """Each length-delimited record of `data`, with its length prefix (a whole Protobuf-format input)."""
    pos = 0
    while pos < len(data):
        length, start = _DecodeVarint(data, pos)
        yield data[pos:start + length]
        pos = start + length


def complete_length(data: bytes) -> int:
    """Length of the longest prefix of `data` made of whole length-delimited records."""
    pos = 0
    while pos < len(data):
        try:
            length, start = _DecodeVarint(data, pos)
        except IndexError:
            break
        if start + length > len(data):
            break
        pos = start + length
    return pos


class Spool:
    """Segments of one signal under `directory`; bounded by `max_bytes` on disk."""

    def __init__(self, directory: Path, segment_items: int, max_bytes: int, fsync: bool = True) -> None:
        self.directory = directory
        self.segment_items = segment_items
        self.max_bytes = max_bytes
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # guards the open segment and the queue
        self._has_ready = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()  # one fsync at a time; later appenders ride along
        self._ready: deque[Segment] = deque()
        self._bytes = 0  # on disk: open + closed, not yet deleted
        self._file = None
        self._path: Path | None = None
        self._opened = 0.0
        self._items = 0
        self._written = 0  # bytes appended to the open segment
        self._synced = 0  # of those, bytes known durable
        self._generation = 0  # bumps when a segment is closed
        self._recover()

    def _recover(self) -> None:
        for path in sorted(self.directory.iterdir()):
            if path.suffix not in (OPEN_SUFFIX, SEGMENT_SUFFIX):
                continue
            data = path.read_bytes()
            keep = complete_length(data)
            if keep < len(data):
                log.warning("%s: cutting %d bytes of a torn write (never acknowledged)", path.name, len(data) - keep)
                with open(path, "r+b") as handle:
                    handle.truncate(keep)
                    os.fsync(handle.fileno())
            if keep == 0:
                path.unlink()
                continue
            if path.suffix == OPEN_SUFFIX:
                path = path.rename(path.with_suffix(SEGMENT_SUFFIX))
            self._ready.append(Segment(path, -1, keep))
            self._bytes += keep
        if self._ready:
            log.info("%s: replaying %d segment(s), %d bytes, left by the previous run",
                     self.directory.name, len(self._ready), self._bytes)

    def append(self, payload: bytes, items: int) -> None:
        """Append one request and return once it is durable; Overloaded past the disk budget."""
        prefix = _VarintBytes(len(payload))  # written apart: no copy of a large payload
        size = len(prefix) + len(payload)
        with self._lock:
            if self._bytes + size > self.max_bytes and self._bytes:
                raise Overloaded(f"spool full: {self._bytes} bytes waiting for the store "
                                 f"(budget {self.max_bytes})", retry_after=2)
            if self._file is None:
                self._path = self.directory / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{OPEN_SUFFIX}"
                self._file = open(self._path, "ab")  # noqa: SIM115 - closed in _close_locked
                self._sync_directory()  # the new file's name must survive a power loss too
                self._opened = time.monotonic()
                self._items = self._written = self._synced = 0
            self._file.write(prefix)
            self._file.write(payload)
            self._written += size
            self._items += items
            self._bytes += size
            generation, target = self._generation, self._written
            full = self._items >= self.segment_items
        self._sync(generation, target)
        if full:
            self._close(generation)

    def _sync(self, generation: int, target: int) -> None:
        """Make the open segment durable up to `target` unless a close or another fsync did it.

        Lock order is always _sync_lock, then _lock; closing takes both, so the file cannot be
        closed under a running fsync.
        """
        if not self.fsync:
            with self._lock:
                if generation == self._generation and self._file is not None:
                    self._file.flush()
            return
        with self._sync_lock:
            with self._lock:
                if generation != self._generation or self._synced >= target or self._file is None:
                    return  # closed (and fsync'd) since, or covered by an earlier fsync
                self._file.flush()
                fd, written = self._file.fileno(), self._written
            os.fsync(fd)
            with self._lock:
                if generation == self._generation:
                    self._synced = max(self._synced, written)

    def _sync_directory(self) -> None:
        if self.fsync:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _close(self, generation: int | None = None) -> None:
        with self._sync_lock, self._lock:
            if self._file is not None and generation in (None, self._generation):
                self._close_locked()

    def _close_locked(self) -> None:
        assert self._file is not None and self._path is not None
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        path = self._path.rename(self._path.with_suffix(SEGMENT_SUFFIX))
        self._sync_directory()
        self._ready.append(Segment(path, self._items, self._written))
        self._file = self._path = None
        self._generation += 1
        self._has_ready.notify()

    def close_if_older(self, seconds: float) -> None:
        """Close the open segment if it has waited `seconds` (so partial batches get written)."""
        with self._lock:
            due = self._file is not None and time.monotonic() - self._opened >= seconds
            generation = self._generation
        if due:
            self._close(generation)

    def close(self) -> None:
        """Close the open segment (shutdown)."""
        self._close()

    def take(self, timeout: float) -> Segment | None:
        """The oldest closed segment, waiting up to `timeout` seconds for one."""
        with self._lock:
            if not self._ready:
                self._has_ready.wait(timeout)
            return self._ready.popleft() if self._ready else None

    def put_back(self, segment: Segment) -> None:
        """Return a segment that could not be inserted (shutdown); it stays on disk for the next run."""
        with self._lock:
            self._ready.appendleft(segment)

    def done(self, segment: Segment) -> None:
        """The segment is in the store: delete it."""
        segment.path.unlink(missing_ok=True)
        with self._lock:
            self._bytes -= segment.size

    def pending_bytes(self) -> int:
        with self._lock:
            return self._bytes
