"""The spool under I/O errors: real files, with failures injected into its writes, fsyncs and cuts.

Whatever fails, an acknowledged request must be in a queued segment (within the bytes the writer
reads), a refused one must not be, nothing else may be, and the disk budget's count must match. And a partial
segment is handed to the writer as soon as it is due.
"""

from __future__ import annotations

import errno
import os
import random
import threading
import time

import pytest
from google.protobuf.internal.decoder import _DecodeVarint

from llmloop.collector import spool as spool_module
from llmloop.collector.errors import Overloaded
from llmloop.collector.spool import Spool, records


def _failing(real, rng: random.Random, rate: float, partial: bool = False):
    """`real`, failing with EIO at `rate` in the appending threads; a partial write first if `partial`."""
    def call(*args):
        if threading.current_thread().name.startswith("appender") and rng.random() < rate:
            if partial:
                real(args[0], [bytes(args[1][0])[: max(1, len(args[1][0]) // 2)]])
            raise OSError(errno.EIO, "injected")
        return real(*args)
    return call


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_io_errors_never_lose_an_acknowledged_request(tmp_path, monkeypatch, fsync: bool, seed: int) -> None:
    rng = random.Random(seed)
    for name, rate in (("writev", 0.05), ("fsync", 0.05), ("ftruncate", 0.3)):
        monkeypatch.setattr(spool_module.os, name, _failing(getattr(os, name), rng, rate, partial=name == "writev"))
    spool = Spool(tmp_path / "traces", segment_items=7, max_bytes=1 << 40, fsync=fsync)
    acked: set[bytes] = set()
    refused: set[bytes] = set()

    def append_many(thread: int) -> None:
        for i in range(150):
            payload = f"{thread}-{i}-".encode() + os.urandom(random.randrange(1, 3000))
            try:
                spool.append(payload, 1)
                acked.add(payload)
            except Overloaded:
                refused.add(payload)
            if i % 40 == 0:
                spool.close()

    threads = [threading.Thread(target=append_many, args=(n,), name=f"appender-{n}") for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.undo()
    spool.close()

    stored: set[bytes] = set()
    queued = 0
    while (segment := spool.take(0)) is not None:
        with open(segment.path, "rb") as file:
            data = file.read(segment.size)  # what the writer inserts
        assert len(data) == segment.size
        for record in records(data):
            _, start = _DecodeVarint(record, 0)
            stored.add(record[start:])
        queued += segment.size
    assert refused, "no failure was injected"
    assert acked <= stored, f"{len(acked - stored)} acknowledged requests lost"
    assert not stored & refused
    assert stored <= acked | refused
    assert spool.pending_bytes() == queued


def test_a_due_partial_segment_is_taken_without_waiting(tmp_path) -> None:
    """A writer that was busy past the flush interval takes the partial segment at once, and an idle one
    as soon as it is due, not at the end of its wait."""
    spool = Spool(tmp_path / "traces", segment_items=100, max_bytes=1 << 30)
    spool.append(b"early", 1)
    assert spool.take(0, max_age=60) is None  # neither full nor due
    time.sleep(0.2)
    segment = spool.take(0, max_age=0.1)
    assert segment is not None and segment.items == 1

    opened = time.monotonic()
    spool.append(b"later", 1)
    segment = spool.take(30, max_age=0.5)
    taken = time.monotonic() - opened
    assert segment is not None and segment.items == 1
    assert 0.5 <= taken < 10, taken
    assert spool.take(0, max_age=0) is None  # nothing open, nothing queued


def test_a_quiet_partial_segment_is_taken_before_it_is_due(tmp_path) -> None:
    """Once requests stop coming, a partial segment of a quarter batch or more goes to an idle writer after
    `quiet` seconds, not at the flush interval; a smaller one (a trickle) still waits for the interval."""
    spool = Spool(tmp_path / "traces", segment_items=100, max_bytes=1 << 30)
    spool.append(b"small", 24)
    started = time.monotonic()
    assert spool.take(0.5, max_age=60, quiet=0.05) is None  # under a quarter: only max_age takes it
    assert time.monotonic() - started >= 0.5
    appended = time.monotonic()
    spool.append(b"more", 1)  # 25 items: a quarter
    segment = spool.take(30, max_age=60, quiet=0.3)
    waited = time.monotonic() - appended
    assert segment is not None and segment.items == 25
    assert 0.3 <= waited < 10, waited

    def keep_appending() -> None:
        for _ in range(10):
            spool.append(b"busy", 10)
            time.sleep(0.05)

    appender = threading.Thread(target=keep_appending)
    appender.start()
    started = time.monotonic()
    segment = spool.take(30, max_age=60, quiet=0.3)  # requests keep coming: it fills up first
    appender.join()
    assert segment is not None and segment.items == 100
    assert time.monotonic() - started < 10
