"""OTLP written straight into the ingest tables (no collector in between) keeps its attributes.

The attribute limits are the collector's (collector/attributes.py); the ingest views render every list
as it comes. (Before 0013 the views read the limits from a table that a store migrated by `llmloop
migrate` alone had empty, and 0004's logs view then dropped every attribute.)
Runs in a child process: a process can open only one embedded store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(r'''
    import json, sys, time
    from pathlib import Path
    from google.protobuf.internal.encoder import _VarintBytes
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from llmloop.collector.decode import LOGS, TRACES
    from llmloop.collector.store import connect, load_conventions, migrate
    from llmloop.collector.writer import Writer
    from llmloop.queries import Layout

    root = Path(sys.argv[1])
    client = connect(f"chdb://{root}/store")
    migrate(client, Layout())
    load_conventions(client, "llmloop")

    def insert(signal, request):
        body = request if isinstance(request, bytes) else request.SerializeToString()
        settings = Writer(signal, lambda: client, root / "spool", local_store=True).settings
        client.raw_insert(f"llmloop.{signal.table}", insert_block=_VarintBytes(len(body)) + body,
                          fmt="Protobuf", settings=settings)

    logs = logs_service_pb2.ExportLogsServiceRequest()
    resource = logs.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "support-bot"
    scope = resource.scope_logs.add()
    scope.scope.attributes.add(key="scope.attr").value.string_value = "s"
    record = scope.log_records.add(time_unix_nano=time.time_ns(), event_name="gen_ai.evaluation.result")
    record.body.string_value = "hello"
    record.attributes.add(key="gen_ai.evaluation.name").value.string_value = "relevance"
    record.attributes.add(key="gen_ai.evaluation.score.value").value.double_value = 0.5
    insert(LOGS, logs)

    traces = trace_service_pb2.ExportTraceServiceRequest()
    resource = traces.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "support-bot"
    span = resource.scope_spans.add().spans.add(
        name="chat", trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        start_time_unix_nano=time.time_ns(), end_time_unix_nano=time.time_ns() + 1000)
    span.attributes.add(key="gen_ai.request.model").value.string_value = "claude-sonnet-4-5"
    insert(TRACES, traces)
    # Span attribute values that are not AnyValues at all (the collector's parse would refuse them) decode as
    # something in the ingest view, never as an error that would fail the whole insert.
    def ld(tag, payload):
        return bytes([tag]) + _VarintBytes(len(payload)) + payload

    garbage = [b"\x0a", b"\x0a\xff\xff\xff\xff\x0f", b"\x2a\x05\x0a\x09", b"\x32\x03\x0a\x7f\x0a", b"\x18",
               b"\x21\x00", b"\x2a\x0a" + b"\x0a\xff" * 5, b"\x99\x99\x99", b"\x32\x04\x0a\x02\x12\x7f"]
    span.name, span.span_id = "garbage", bytes.fromhex("b7ad6b7169203332")
    span_bytes = span.SerializeToString() + b"".join(
        ld(0x4A, ld(0x0A, f"garbage{i}".encode()) + ld(0x12, g)) for i, g in enumerate(garbage))
    insert(TRACES, ld(0x0A, ld(0x12, ld(0x12, span_bytes))))

    print(json.dumps({
        "logs": list(client.query("SELECT ServiceName, ResourceAttributes, ScopeAttributes, LogAttributes, Body "
                                  "FROM llmloop.logs").named_results()),
        "spans": list(client.query("SELECT ServiceName, ResourceAttributes, SpanAttributes, RequestModel "
                                   "FROM llmloop.spans WHERE SpanName = 'chat'").named_results()),
        "garbage": client.query("SELECT mapKeys(SpanAttributes) FROM llmloop.spans WHERE SpanName = 'garbage'")
                         .result_rows,
    }))
''')


def test_otlp_inserted_straight_into_the_ingest_tables_keeps_its_attributes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    stored = json.loads(done.stdout.strip().splitlines()[-1])
    assert stored["logs"] == [{
        "ServiceName": "support-bot",
        "ResourceAttributes": {"service.name": "support-bot"},
        "ScopeAttributes": {"scope.attr": "s"},
        "LogAttributes": {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": "0.5"},
        "Body": "hello",
    }]
    assert stored["spans"] == [{
        "ServiceName": "support-bot",
        "ResourceAttributes": {"service.name": "support-bot"},
        "SpanAttributes": {"gen_ai.request.model": "claude-sonnet-4-5"},
        "RequestModel": "claude-sonnet-4-5",
    }]
    assert stored["garbage"] == [[["gen_ai.request.model", *(f"garbage{i}" for i in range(9))]]]
