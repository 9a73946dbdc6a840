"""A store upgraded across 0009 (the lean ingest pipeline), 0014 (raw span attribute values, a new ingest table)
and 0018 (raw event and link attribute values, another): spans before and after are stored alike, also when a
collector of an earlier version still inserts into its ingest table after the upgrade (a cluster upgraded one
node at a time).

Runs in a child process: a process can open only one embedded store.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(r'''
    import hashlib, json, sys, time
    from pathlib import Path
    from google.protobuf.internal.encoder import _VarintBytes
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from llmloop import queries
    from llmloop.collector.decode import TRACES
    from llmloop.collector.protoschema import format_schema
    from llmloop.collector.store import connect, load_conventions, migrate
    from llmloop.collector.writer import Writer
    from llmloop.queries import Layout

    root = sys.argv[1]
    client, layout = connect(f"chdb://{root}/store"), Layout()
    for version, name in queries.migrations():  # the store as the release before 0009 left it
        if version < 9:
            for statement in queries.render(queries.load(f"schema/{name}"), layout):
                client.command(statement)
            client.insert("llmloop.schema_migrations", [[version, name]], column_names=["version", "name"])
    settings = Writer(TRACES, lambda: client, Path(root) / "spool", local_store=True).settings
    # How a collector of a release before 0014 inserted: typed attribute values, into otlp_traces_in.
    typed, message = format_schema(TRACES.request.DESCRIPTOR)
    (Path(root) / "typed.proto").write_text(typed)
    old = ("otlp_traces_in", {**settings, "format_schema": f"{root}/typed.proto:{message}"})
    new = (TRACES.table, settings)
    # How a collector of the releases from 0014 to 0017 inserted: raw span attribute values, into otlp_spans_in.
    raw, message = format_schema(TRACES.request.DESCRIPTOR, ("resource_spans.scope_spans.spans.attributes.value",))
    (Path(root) / "raw.proto").write_text(raw)
    raw_spans = ("otlp_spans_in", {**settings, "format_schema": f"{root}/raw.proto:{message}"})
    native = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4-5",
              "gen_ai.usage.input_tokens": 10, "llmloop.config.id": "support@3"}
    foreign = {"llm.request.type": "chat", "llm.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 20,
               "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Hi"}

    def send(name, attributes, token, via=old, event=False):
        request = trace_service_pb2.ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add(
            name=name, trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
            span_id=hashlib.blake2b(name.encode(), digest_size=8).digest(), start_time_unix_nano=time.time_ns(),
            end_time_unix_nano=time.time_ns() + 1000)
        if event:  # with a link too: both carry attributes of every kind
            for holder in (span.events.add(name="retry", time_unix_nano=time.time_ns()),
                           span.links.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)))):
                holder.attributes.add(key="attempt").value.int_value = 2
                holder.attributes.add(key="reason").value.string_value = "overloaded"
                holder.attributes.add(key="ok").value.bool_value = False
                values = holder.attributes.add(key="codes").value.array_value.values
                values.add().int_value = 529
                values.add().string_value = "529"
        for key, value in attributes.items():
            kv = span.attributes.add(key=key)
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value
        body = request.SerializeToString()
        table, table_settings = via
        client.raw_insert(f"llmloop.{table}", insert_block=_VarintBytes(len(body)) + body, fmt="Protobuf",
                          settings={**table_settings, "insert_deduplication_token": token})

    load_conventions(client, "llmloop")
    send("a-native-before", native, "t1")
    send("b-foreign-before", foreign, "t2")
    migrate(client, layout)  # 0009 and later
    load_conventions(client, "llmloop")
    send("c-native-after", native, "t3", new)
    send("d-foreign-after", foreign, "t4", new)
    send("g-native-old-collector", native, "t7")
    send("h-foreign-old-collector", foreign, "t8")
    send("i-native-event-before", native, "t9", event=True)
    send("j-native-event-after", native, "t10", new, event=True)
    send("k-foreign-event-after", foreign, "t11", new, event=True)
    send("l-native-0014-collector", native, "t12", raw_spans)
    send("m-native-event-0014-collector", native, "t13", raw_spans, event=True)
    # A collector older than 0009 restarting on this store writes conventions without foreign rows.
    client.command("INSERT INTO llmloop.conventions (mapping, key, targets, generation) "
                   "SELECT mapping, key, targets, generation + 1 FROM llmloop.conventions FINAL "
                   "WHERE generation = (SELECT max(generation) FROM llmloop.conventions) "
                   "AND mapping NOT IN ('foreign_key', 'foreign_prefix')")
    send("e-foreign-no-rows", foreign, "t5", new)
    send("f-native-no-rows", native, "t6", new)
    rows = client.query("SELECT SpanName, Operation, RequestModel, InputTokens, ConfigId, InputMessages, "
                        "`Events.Attributes` AS events, `Links.Attributes` AS links "
                        "FROM llmloop.spans FINAL ORDER BY SpanName").named_results()
    print(json.dumps(list(rows)))
''')


def test_spans_map_alike_before_after_and_without_foreign_rows(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {row["SpanName"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])}
    assert sorted(rows) == ["a-native-before", "b-foreign-before", "c-native-after", "d-foreign-after",
                            "e-foreign-no-rows", "f-native-no-rows", "g-native-old-collector",
                            "h-foreign-old-collector", "i-native-event-before", "j-native-event-after",
                            "k-foreign-event-after", "l-native-0014-collector", "m-native-event-0014-collector"]
    for name in ("a-native-before", "c-native-after", "f-native-no-rows", "g-native-old-collector",
                 "i-native-event-before", "j-native-event-after", "l-native-0014-collector",
                 "m-native-event-0014-collector"):
        assert (rows[name]["Operation"], rows[name]["RequestModel"], rows[name]["InputTokens"],
                rows[name]["ConfigId"]) == ("chat", "claude-sonnet-4-5", 10, "support@3"), rows[name]
    for name in ("b-foreign-before", "d-foreign-after", "e-foreign-no-rows", "h-foreign-old-collector",
                 "k-foreign-event-after"):
        assert (rows[name]["Operation"], rows[name]["RequestModel"], rows[name]["InputTokens"]) == (
            "chat", "gpt-4o", 20), rows[name]
        assert json.loads(rows[name]["InputMessages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    attributes = {"attempt": "2", "reason": "overloaded", "ok": "false", "codes": '[529,"529"]'}
    for name, row in rows.items():
        with_event = "-event-" in name
        assert (row["events"], row["links"]) == (([attributes], [attributes]) if with_event else ([], [])), row
