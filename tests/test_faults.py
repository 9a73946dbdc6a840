"""Fault injection against a real collector subprocess: crashes, duplicates, backpressure, a full spool disk."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.error

import pytest

from tests.test_otlp_e2e import new_span, post, span_request


def send_until_stopped(url: str, acked: list[bytes], stop: threading.Event, spans_per_request: int = 200) -> None:
    """Export requests back to back; remember the trace ids of every acknowledged span."""
    while not stop.is_set():
        spans = [new_span() for _ in range(spans_per_request)]
        try:
            status, _, _ = post(url, span_request(*spans).SerializeToString())
        except (OSError, urllib.error.URLError):
            return  # the collector died mid-request: not acknowledged
        if status == 200:
            acked.extend(s["trace_id"] for s in spans)


def count_present(collector, trace_ids: list[bytes]) -> int:
    present = 0
    for start in range(0, len(trace_ids), 2000):
        chunk = ",".join(f"'{t.hex()}'" for t in trace_ids[start:start + 2000])
        rows = collector.sql(f"SELECT uniqExact(TraceId) AS n FROM llmloop.spans WHERE TraceId IN ({chunk})")
        present += int(rows[0]["n"])
    return present


def test_kill_9_under_load_loses_no_acknowledged_span(new_collector, tmp_path) -> None:
    store = tmp_path / "store"
    first = new_collector("--flush-interval", "5", store=store)  # most data sits in the spool when killed
    acked: list[bytes] = []
    stop = threading.Event()
    senders = [threading.Thread(target=send_until_stopped, args=(f"{first.http_url}/v1/traces", acked, stop))
               for _ in range(3)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 20
    while len(acked) < 6000 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    stop.set()
    for sender in senders:
        sender.join(10)
    assert len(acked) >= 2000, first.logs()
    second = new_collector(store=store)
    deadline = time.monotonic() + 60
    while (present := count_present(second, acked)) < len(acked) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert present == len(acked), f"{len(acked) - present} acknowledged spans lost"
    assert "replaying" in second.logs()


def test_duplicate_delivery_counts_once(collector) -> None:
    spans = [new_span() for _ in range(20)]
    body = span_request(*spans).SerializeToString()
    for _ in range(3):  # a client retrying after lost responses
        assert post(f"{collector.http_url}/v1/traces", body)[0] == 200
    sentinel = new_span()  # sent after the copies: once it is stored, so are they
    assert post(f"{collector.http_url}/v1/traces", span_request(sentinel).SerializeToString())[0] == 200
    assert collector.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{sentinel['trace_id'].hex()}'", 1)
    time.sleep(0.5)  # a concurrent insert worker may still be finishing an earlier segment
    ids = ",".join(f"'{s['trace_id'].hex()}'" for s in spans)
    # Copies in one insert collapse at once; copies in separate inserts wait for a merge.
    rows = collector.sql(f"SELECT TraceId FROM llmloop.spans WHERE TraceId IN ({ids})")
    assert 20 <= len(rows) <= 60
    final = collector.sql(f"SELECT count() AS n, uniqExact(TraceId, SpanId) AS u FROM llmloop.spans FINAL "
                          f"WHERE TraceId IN ({ids})")
    assert int(final[0]["n"]) == 20 == int(final[0]["u"])


def test_spool_budget_answers_retryable_status(new_collector, tmp_path) -> None:
    # Segments never close (huge batch, long flush), so nothing drains and the spool fills up.
    tight = new_collector("--spool-max-mb", "1", "--flush-interval", "600", "--batch-spans", "1000000")
    body = span_request(*[new_span(name="x" * 200) for _ in range(2000)]).SerializeToString()
    statuses = []
    for _ in range(5):
        status, headers, _ = post(f"{tight.http_url}/v1/traces", body)
        statuses.append(status)
        if status == 503:
            assert int(headers["retry-after"]) >= 1
    assert statuses[0] == 200 and 503 in statuses


def test_damaged_spool_segment_is_quarantined_not_blocking(new_collector, tmp_path) -> None:
    """A spool file the store cannot parse must not block everything behind it."""
    from google.protobuf.internal.encoder import _VarintBytes

    store = tmp_path / "store"
    spool = tmp_path / "store.spool" / "traces"
    spool.mkdir(parents=True)
    good = new_span()
    good_body = span_request(good).SerializeToString()
    garbage = b"\x0a\x05\xff\xff\xff\xff\xff"
    segment = b"".join(_VarintBytes(len(b)) + b for b in (good_body, garbage))
    (spool / "00000000000000000001-damaged.otlp").write_bytes(segment)
    collector = new_collector(store=store)
    later = new_span()
    assert post(f"{collector.http_url}/v1/traces", span_request(later).SerializeToString())[0] == 200
    for fields in (good, later):
        assert collector.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{fields['trace_id'].hex()}'",
                                   1, timeout=60), collector.logs()
    assert list((spool / "rejected").iterdir()), collector.logs()
    assert "the store rejects request 1" in collector.logs()


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (a real file system that fills up); skipped where mounting is not allowed."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_spool_disk_answers_retryable_status_and_recovers(new_collector, small_disk) -> None:
    """A spool write that fails (disk full) is refused with 503 + Retry-After, costs nothing that was
    acknowledged, and does not wedge the spool: once there is room, exports are taken and stored."""
    collector = new_collector("--spool-dir", str(small_disk))
    url = f"{collector.http_url}/v1/traces"
    filler = small_disk / "filler"
    stats = os.statvfs(small_disk)
    filler.write_bytes(bytes(stats.f_bavail * stats.f_frsize - 700_000))  # leaves ~700 kB free

    def request(label: str, n: int) -> bytes:
        return span_request(*[new_span(name=label + "x" * 300) for _ in range(n)]).SerializeToString()

    sizes = {"small": 1000, "later": 1000, "large": 4000}  # ~0.35 MB fits; ~1.4 MB cannot fit beside the filler
    bodies = {label: request(label, n) for label, n in sizes.items()}
    assert post(url, bodies["small"])[0] == 200
    status, headers, _ = post(url, bodies["large"])
    assert status == 503, collector.logs()
    assert int(headers["retry-after"]) >= 1
    filler.unlink()
    assert post(url, bodies["later"])[0] == 200, collector.logs()
    assert post(url, bodies["large"])[0] == 200, collector.logs()  # the client's retry
    for label, n in sizes.items():
        rows = collector.wait_rows("SELECT SpanId FROM llmloop.spans FINAL WHERE startsWith(SpanName, {label:String})",
                                   n, timeout=60, label=label)
        assert len(rows) == n, (label, collector.logs())
    assert "cannot write to the spool" in collector.logs()
    assert "No space left on device" in collector.logs()
