"""Write-ahead spool: append-only segment files of length-delimited OTLP requests.

A request is acknowledged only after its bytes are fsync'd into the open segment (concurrent
appenders share one fsync: group commit). A closed segment is exactly the input of one ClickHouse
`INSERT ... FORMAT Protobuf`, and its file name is that insert's deduplication token, so a segment
replayed after a crash (inserted, but not yet deleted) is not stored twice. On start-up, segments
left by a previous run are recovered: a torn tail (never acknowledged) is cut off, the rest is
queued for insertion.

A request whose write or fsync fails (a full disk, an I/O error) is refused as Overloaded, which
clients retry. Its torn bytes are cut off the segment, so the requests around it stay whole and
the spool takes requests again as soon as the disk does; after a failed fsync the segment is cut
back to what an earlier fsync made durable and closed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
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
    """A closed segment file whose first `size` bytes hold `items` items (-1: not counted, as after a
    recovery or an I/O error)."""

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


def _write_all(fd: int, *buffers: bytes) -> None:
    """Write `buffers` to `fd` in full (os.writev may write less than asked)."""
    views = [memoryview(buffer) for buffer in buffers]
    while views:
        written = os.writev(fd, views)
        if not written:
            raise OSError(errno.EIO, "write made no progress")
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]


def _refusal(reason: str) -> Overloaded:
    return Overloaded(f"the spool cannot write: {reason}; retry later", retry_after=2)


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
        self._fd: int | None = None  # the open segment, written unbuffered
        self._path: Path | None = None
        self._sealed = False  # a failed write could not be cut off: no more appends to this segment
        self._opened = 0.0
        self._appended = 0.0  # when the open segment last took a request
        self._items = 0
        self._written = 0  # bytes appended to the open segment
        self._synced = 0  # of those, bytes known durable
        self._generation = 0  # bumps when a segment is closed
        self._failed: dict[int, tuple[int, str]] = {}  # generation -> (bytes kept, error) after an I/O error
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
        """Append one request and return once it is durable; Overloaded past the disk budget or when
        the spool cannot write."""
        prefix = _VarintBytes(len(payload))  # written apart: no copy of a large payload
        size = len(prefix) + len(payload)
        with self._lock:
            if self._bytes + size > self.max_bytes and self._bytes:
                raise Overloaded(f"spool full: {self._bytes} bytes waiting for the store "
                                 f"(budget {self.max_bytes})", retry_after=2)
            if self._sealed:
                raise _refusal("a segment is being closed after a write error")
            if self._fd is None:
                self._open_locked()
            assert self._fd is not None
            generation, error = self._generation, None
            try:
                _write_all(self._fd, prefix, payload)
            except BaseException as exc:  # an interrupted write leaves torn bytes too
                try:
                    os.ftruncate(self._fd, self._written)  # drop the torn bytes: the segment stays whole
                except OSError:
                    self._sealed = True  # whole up to _written only: closed below, read only that far
                if not isinstance(exc, OSError):
                    raise
                error, sealed = exc, self._sealed
            else:
                self._written += size
                self._items += items
                self._appended = time.monotonic()
                self._bytes += size
                target, full = self._written, self._items >= self.segment_items
        if error is not None:
            log.error("%s: cannot write to the spool, refusing a request (retryable): %s", self.directory.name, error)
            if sealed:
                self._close(generation)
            raise _refusal(str(error))
        self._sync(generation, target)
        if full:
            self._close(generation)

    def _open_locked(self) -> None:
        path = self.directory / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{OPEN_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                self._sync_directory()  # the new file's name must survive a power loss too
            except OSError:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.error("%s: cannot create a spool segment, refusing a request (retryable): %s",
                      self.directory.name, exc)
            raise _refusal(str(exc)) from None
        self._fd, self._path = fd, path
        self._opened = time.monotonic()
        self._items = self._written = self._synced = 0

    def _sync(self, generation: int, target: int) -> None:
        """Make the open segment durable up to `target` unless a close or another fsync did it.

        Lock order is always _sync_lock, then _lock; closing takes both, so the file cannot be
        closed under a running fsync. Raises Overloaded if an I/O error lost bytes up to `target`.
        """
        if not self.fsync:
            return
        with self._sync_lock:
            with self._lock:
                if generation != self._generation:
                    self._check_kept(generation, target)  # closed (and fsync'd) since, unless it failed
                    return
                if self._synced >= target or self._fd is None:
                    return  # covered by an earlier fsync
                fd, written = self._fd, self._written
            try:
                os.fsync(fd)
            except OSError as exc:
                with self._lock:
                    if generation == self._generation:
                        self._fail_locked(exc)
                    self._check_kept(generation, target)
                return
            with self._lock:
                if generation == self._generation:
                    self._synced = max(self._synced, written)

    def _check_kept(self, generation: int, target: int) -> None:
        kept, error = self._failed.get(generation, (target, ""))
        if target > kept:
            raise _refusal(error)

    def _sync_directory(self) -> None:
        if self.fsync:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _close(self, generation: int | None = None) -> None:
        with self._sync_lock, self._lock:
            if self._fd is not None and generation in (None, self._generation):
                self._close_locked()

    def _close_locked(self) -> None:
        """Close the open segment (both locks held): cut, fsync'd, renamed and queued."""
        assert self._fd is not None
        if self._sealed:  # best effort: the writer reads only `size` bytes, recovery cuts a torn tail
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._written)
        try:
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._fail_locked(exc)
            return
        self._finish_locked(self._written, self._items)

    def _fail_locked(self, exc: OSError) -> None:
        """An fsync of the open segment failed (both locks held): what it covered may be lost, so
        only what an earlier fsync made durable is kept; the segment is cut there and closed, and
        the requests past it are refused (`_check_kept`)."""
        assert self._fd is not None and self._path is not None
        keep = self._synced
        # If the cut fails too, the writer still reads only the kept bytes; a restart may replay more
        # (requests that were refused, so clients resend them: the duplicates collapse).
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, keep)
        log.error("%s: cannot sync spool segment %s (%s): keeping its first %d bytes, refusing (retryable) "
                  "the requests after them", self.directory.name, self._path.name, exc, keep)
        self._failed[self._generation] = (keep, str(exc))
        self._bytes -= self._written - keep
        self._finish_locked(keep, -1)

    def _finish_locked(self, size: int, items: int) -> None:
        """Close the open segment's file and queue its first `size` bytes (a file kept empty is deleted)."""
        assert self._fd is not None and self._path is not None
        with contextlib.suppress(OSError):  # what the segment keeps was fsync'd (or is not counted on)
            os.close(self._fd)
        path = self._path
        self._fd = self._path = None
        self._sealed = False
        self._generation += 1
        if size == 0:
            with contextlib.suppress(OSError):  # (a read-only file system) recovery deletes it at the next start
                path.unlink(missing_ok=True)
            return
        try:
            path = path.rename(path.with_suffix(SEGMENT_SUFFIX))
            self._sync_directory()
        except OSError as exc:  # a .open segment is still inserted, and recovered after a restart
            log.error("%s: cannot rename spool segment %s: %s", self.directory.name, path.name, exc)
        self._ready.append(Segment(path, items, size))
        self._has_ready.notify()

    def close(self) -> None:
        """Close the open segment (shutdown)."""
        self._close()

    def take(self, timeout: float, max_age: float = math.inf, quiet: float = math.inf) -> Segment | None:
        """The oldest closed segment, waiting up to `timeout` seconds for one. With none queued, the open
        segment is closed and taken once it is `max_age` seconds old, or once no request came for `quiet`
        seconds while it holds a quarter of a full segment or more: a burst's last requests are not left
        waiting for the flush interval, and a trickle still makes one insert per `max_age`. Either way
        also by a writer that was busy until then."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._ready:
                    return self._ready.popleft()
                now = time.monotonic()
                due_in = math.inf
                if self._fd is not None:
                    due_in = self._opened + max_age - now
                    if self._items * 4 >= self.segment_items:
                        due_in = min(due_in, self._appended + quiet - now)
                if due_in > 0:
                    if now >= deadline:
                        return None
                    self._has_ready.wait(min(deadline - now, due_in))
                    continue
                generation = self._generation
            self._close(generation)

    def put_back(self, segment: Segment) -> None:
        """Return a segment that could not be inserted (shutdown); it stays on disk for the next run."""
        with self._lock:
            self._ready.appendleft(segment)

    def done(self, segment: Segment) -> None:
        """The segment is in the store: delete it."""
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as exc:  # replayed at the next start: its deduplication token drops it
            log.error("%s: cannot delete inserted spool segment %s: %s", self.directory.name, segment.path.name, exc)
        with self._lock:
            self._bytes -= segment.size

    def pending_bytes(self) -> int:
        with self._lock:
            return self._bytes
