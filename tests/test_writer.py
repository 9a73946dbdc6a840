"""The writer keeps going when a queued spool segment has vanished (deleted by hand) before its insert, tunes
its inserts only with settings the store knows, and does not hold a burst's last spans for the flush interval.

Each test runs in a child process: a process can open only one embedded store.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(r'''
    import logging, sys, time
    from pathlib import Path
    from google.protobuf.internal.encoder import _VarintBytes
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from llmloop.collector.decode import TRACES
    from llmloop.collector.store import connect, migrate
    from llmloop.queries import Layout
    from llmloop.collector.writer import Writer

    logging.basicConfig(level=logging.INFO)
    root = Path(sys.argv[1])
    client = connect(f"chdb://{root}/store")
    migrate(client, Layout())

    def request(name):
        body = trace_service_pb2.ExportTraceServiceRequest()
        body.resource_spans.add().scope_spans.add().spans.add(
            name=name, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), start_time_unix_nano=time.time_ns())
        return body.SerializeToString()

    spool = root / "spool" / "traces"
    spool.mkdir(parents=True)
    gone = spool / "00000000000000000001-gone.otlp"
    body = request("gone")
    gone.write_bytes(_VarintBytes(len(body)) + body)
    writer = Writer(TRACES, lambda: client, root / "spool", batch_items=1, workers=1, local_store=True)
    gone.unlink()  # queued by the spool's recovery, then deleted before the writer starts
    writer.start()
    writer.submit(request("later"), 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.command("SELECT count() FROM llmloop.spans WHERE SpanName = 'later'") == 1:
            print("stored")
            break
        time.sleep(0.2)
    writer.stop()
''')


def test_a_vanished_segment_does_not_stop_the_writer(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1:] == ["stored"], done.stderr[-3000:]
    assert "00000000000000000001-gone.otlp is gone" in done.stderr


TUNING_SCRIPT = textwrap.dedent(r'''
    import sys
    from pathlib import Path
    from llmloop.collector import writer
    from llmloop.collector.store import connect

    client = connect(f"chdb://{Path(sys.argv[1])}/store")
    writer._TUNING["no_such_setting_in_any_clickhouse"] = 0  # as a setting of a newer engine, on an older store
    settings = writer.tuned(client, {"format_schema": "x"})
    print(sorted(settings))
''')


def test_insert_tuning_keeps_only_settings_the_store_knows(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", TUNING_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(sorted(
        ["format_schema", "optimize_on_insert", "query_plan_enable_optimizations", "optimize_and_compare_chain"]))


IN_PLACE_SCRIPT = textwrap.dedent(r'''
    import sys, time
    from pathlib import Path
    from google.protobuf.internal.encoder import _VarintBytes
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from llmloop.collector.decode import TRACES
    from llmloop.collector.spool import Segment
    from llmloop.collector.store import connect, migrate
    from llmloop.queries import Layout
    from llmloop.collector.writer import Writer, tuned

    root = Path(sys.argv[1])
    client = connect(f"chdb://{root}/store")
    migrate(client, Layout())

    def record(name):
        body = trace_service_pb2.ExportTraceServiceRequest()
        body.resource_spans.add().scope_spans.add().spans.add(
            name=name, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), start_time_unix_nano=time.time_ns())
        body = body.SerializeToString()
        return _VarintBytes(len(body)) + body

    # A spool directory whose name needs quoting in SQL: a segment file longer than what the spool counted in it
    # (a torn tail that could not be cut after a failed fsync), then a whole one, read in place.
    plain = Writer(TRACES, lambda: client, root / "it's plain", workers=1, local_store=True)
    settings = tuned(client, plain.settings)
    whole = record("whole-1") + record("whole-2")
    path = plain.spool.directory / "00000000000000000001-torn.otlp"
    path.write_bytes(whole + record("torn")[:-3])
    assert plain._insert(client, settings, Segment(path, 2, len(whole)))
    path = path.with_name("00000000000000000002-whole.otlp")
    path.write_bytes(record("in-place"))
    assert plain._insert(client, settings, Segment(path, 1, path.stat().st_size))
    # One whose name FROM INFILE would take as a pattern: its segments go as bytes.
    pattern = Writer(TRACES, lambda: client, root / "{spool}*", workers=1, local_store=True)
    path = pattern.spool.directory / "00000000000000000003-pattern.otlp"
    path.write_bytes(record("pattern"))
    assert plain.in_place and not pattern.in_place
    assert pattern._insert(client, tuned(client, pattern.settings), Segment(path, 1, path.stat().st_size))
    print(client.query("SELECT groupArraySorted(10)(SpanName) FROM llmloop.spans").result_rows[0][0])
''')


def test_segments_are_inserted_up_to_their_counted_bytes_from_any_spool_path(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", IN_PLACE_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stored = done.stdout.strip().splitlines()[-1]
    assert stored == str(["in-place", "pattern", "whole-1", "whole-2"]), done.stderr[-3000:]
    assert "failed, retrying" not in done.stderr


QUIET_SCRIPT = textwrap.dedent(r'''
    import sys, time
    from pathlib import Path
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from llmloop.collector.decode import TRACES
    from llmloop.collector.store import connect, migrate
    from llmloop.queries import Layout
    from llmloop.collector.writer import Writer

    root = Path(sys.argv[1])
    client = connect(f"chdb://{root}/store")
    migrate(client, Layout())
    body = trace_service_pb2.ExportTraceServiceRequest()
    spans = body.resource_spans.add().scope_spans.add().spans
    for i in range(1, 4):
        spans.add(name="burst", trace_id=bytes(range(i, i + 16)), span_id=bytes(range(i, i + 8)),
                  start_time_unix_nano=time.time_ns())
    writer = Writer(TRACES, lambda: client, root / "spool", batch_items=12, flush_interval=120, workers=1,
                    local_store=True)
    writer.start()
    sent = time.monotonic()
    writer.submit(body.SerializeToString(), 3)  # a quarter of a batch, then nothing more
    while client.command("SELECT count() FROM llmloop.spans WHERE SpanName = 'burst'") < 3:
        time.sleep(0.05)
    print(f"{time.monotonic() - sent:.2f}")
    writer.stop()
''')


def test_a_bursts_last_segment_is_inserted_before_the_flush_interval(tmp_path: Path) -> None:
    """Once requests stop, a partial batch of a quarter or more is inserted at once, not after --flush-interval."""
    done = subprocess.run([sys.executable, "-c", QUIET_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 60  # the flush interval is 120 s
