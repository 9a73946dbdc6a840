"""Plain requests in our own conventions go straight into `spans` (0015, 0016, 0018); they must get the rows the
staged path (0014's first stage, `spans_stage` and its views) gives them.

The same such request goes into the ingest table (the direct path) and, straight, into the table of the staged
path; every column of the two copies of each span must match. Requests that are not plain (an event, an array of
two strings, a map) or hold a span in a foreign convention must reach the store once, through the staged path,
alone or in one insert with direct ones. A view the test adds records each request's path.
Runs in a child process: a process can open only one embedded store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from tests.test_attribute_rendering import CASES, ODD

SCRIPT = textwrap.dedent(r'''
    import json, sys
    from pathlib import Path
    from llmloop.collector.decode import TRACES
    from llmloop.collector.store import connect, load_conventions, migrate
    from llmloop.collector.writer import Writer
    from llmloop.queries import Layout

    root = Path(sys.argv[1])
    client = connect(f"chdb://{root}/store")
    migrate(client, Layout())
    load_conventions(client, "llmloop")
    settings = Writer(TRACES, lambda: client, root / "spool", local_store=True).settings
    client.command("CREATE TABLE llmloop.route_log (direct Bool, spans UInt64, events UInt64, keys Array(String)) "
                   "ENGINE = Memory")
    client.command("CREATE MATERIALIZED VIEW llmloop.route_log_mv TO llmloop.route_log AS SELECT direct, "
                   "length(arrayFlatten(resource_spans.scope_spans.spans.span_id)) AS spans, "
                   "length(arrayFlatten(resource_spans.scope_spans.spans.events.name)) AS events, "
                   "arraySort(arrayDistinct(arrayFlatten(resource_spans.scope_spans.spans.attributes.key))) AS keys "
                   "FROM llmloop.otlp_spans_raw_routed")
    for index, (table, name) in enumerate(json.loads(sys.argv[2])):
        client.raw_insert(f"llmloop.{table}", insert_block=(root / name).read_bytes(), fmt="Protobuf",
                          settings={**settings, "insert_deduplication_token": f"t{index}"})
    rows = client.query("SELECT * FROM llmloop.spans ORDER BY SpanId").result_rows
    routes = client.query("SELECT direct, spans, events, keys FROM llmloop.route_log ORDER BY keys, events").result_rows
    print(json.dumps({"rows": [[repr(value) for value in row] for row in rows], "routes": routes}))
''')


def _plain(raw: bytes) -> bool:
    """Whether an encoded AnyValue is plain (0015): no map, and an array only of one string under 124 bytes."""
    if raw[:1] == b"\x32":
        return False
    n = len(raw)
    return raw[:1] != b"\x2a" or (6 <= n < 130 and raw[1:6] == bytes([n - 2, 10, n - 4, 10, n - 6]))


def _one_string(text: str) -> bytes:
    value = common_pb2.AnyValue()
    value.array_value.values.add().string_value = text
    return value.SerializeToString()


# Arrays of one string at the edges of the plain layout (besides CASES' "array.one").
EDGES = {"array.one.empty": _one_string(""), "array.one.escaped": _one_string('a\n"\u2603'),
         "array.one.123": _one_string("q" * 123), "array.one.124": _one_string("q" * 124)}


def _values() -> dict[str, bytes]:
    out = {}
    for key, (fill, _) in CASES.items():
        value = common_pb2.AnyValue()
        fill(value)
        out[key] = value.SerializeToString()
    return {**out, **ODD, **EDGES}


def _request(values: dict[str, bytes], event: bool = False, foreign: bool = False) -> bytes:
    """One request of two resources and five spans carrying `values`; with `event`, two of them have an event,
    with `foreign`, two are in a foreign convention."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    now = time.time_ns()
    for r in range(2):
        resource = request.resource_spans.add()
        resource.resource.attributes.add(key="service.name").value.string_value = f"svc-{r}"
        scope = resource.scope_spans.add()
        scope.scope.name = "llmloop.test"
        for s in range(3 - r):
            span = scope.spans.add(name=f"chat {r}.{s}", trace_id=os.urandom(16), span_id=os.urandom(8),
                                   start_time_unix_nano=now, end_time_unix_nano=now + 1_000_000, kind=3)
            for key, raw in values.items():
                span.attributes.add(key=key).value.MergeFromString(raw)
            span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 10 + s
            if foreign and s == 1:  # OpenLLMetry's flattened prompt: mapped (0006)
                span.attributes.add(key="gen_ai.prompt.0.content").value.string_value = "hi"
            if event and s == 0:
                span.events.add(name="exception", time_unix_nano=now).attributes.add(
                    key="exception.type").value.string_value = "ValueError"
    body = request.SerializeToString()
    return _VarintBytes(len(body)) + body


def _run(tmp_path: Path, inserts: list[tuple[str, bytes]]) -> tuple[list[list[str]], list[list]]:
    """The rows of `spans` after the inserts (ordered by SpanId), and (direct, spans, events, distinct span attribute
    keys) of each routed request, ordered by keys and events."""
    names = []
    for index, (table, data) in enumerate(inserts):
        (tmp_path / f"segment{index}").write_bytes(data)
        names.append((table, f"segment{index}"))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), json.dumps(names)],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["rows"], result["routes"]


def test_direct_path_fills_the_rows_the_staged_path_does(tmp_path: Path) -> None:
    values = {key: raw for key, raw in _values().items() if _plain(raw)}
    assert {"array.one", "array.one.empty", "array.one.123", "str.20000", "int.min", "double.nan"} <= set(values)
    assert "array.one.124" not in values
    plain = _request(values)
    rows, routes = _run(tmp_path, [("otlp_spans_raw_in", plain), ("otlp_spans_raw_full", plain)])
    assert [route[:3] for route in routes] == [[True, 5, 0]]
    assert len(rows) == 2 * 5
    for first, second in zip(rows[0::2], rows[1::2], strict=True):
        assert first == second
    attributes = [row for row in rows if "array.one" in row[11]]
    assert attributes and all("'[\"stop\"]'" in row[11] for row in attributes)


def test_other_requests_are_stored_once_through_the_staged_path(tmp_path: Path) -> None:
    values = _values()
    assert not all(_plain(raw) for raw in values.values())
    plain = _request({"str": values["str"]})
    foreign = _request({"str": values["str"]}, foreign=True)
    with_event = _request({"str": values["str"]}, event=True)
    with_arrays = _request(values)  # maps among them
    two_strings = _request({"array.strings": values["array.strings"], "array.one.124": values["array.one.124"]})
    rows, routes = _run(tmp_path, [("otlp_spans_raw_in", with_event),
                                   ("otlp_spans_raw_in", plain + with_arrays + foreign + two_strings)])
    assert len(routes) == 5 and all(spans == 5 for _, spans, _, _ in routes)
    # Only `plain` goes direct; `with_event` has its keys, `foreign` one more.
    assert [route for route in routes if route[0]] == [[True, 5, 0, ["gen_ai.usage.input_tokens", "str"]]]
    assert [False, 5, 2, ["gen_ai.usage.input_tokens", "str"]] in routes
    assert len(rows) == 5 * 5
    assert len({row[2] for row in rows}) == 25  # SpanId: each span once
    assert sum("'ValueError'" in row[17] for row in rows) == 2  # the events' attributes, rendered
    assert sum("'[\"end_turn\",\"tool_use\"]'" in row[11] for row in rows) == 10  # array.strings
    assert sum(f"'[\"{'q' * 124}\"]'" in row[11] for row in rows) == 10  # also in with_arrays
    prompts = [row for row in rows if "gen_ai.prompt.0.content" in row[11]]
    assert len(prompts) == 2 and all('"hi"' in row[40] for row in prompts)  # mapped: InputMessages
