"""Span attributes, decoded from their wire bytes in SQL (0014), render exactly as the typed lists do (0001).

The same attribute list goes on a request's resource, a span, its event and its link: the resource, event and
link lists take 0001's typed rendering, the span's list 0014's decoder, and every rendered value must match,
as must the values the OTel Collector's rendering gives (strings as-is, JSON for arrays and maps).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any

from google.protobuf.internal import encoder
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.conftest import Collector
from tests.test_otlp_e2e import new_span, post


def _array(*items: Callable[[Any], None]) -> Callable[[Any], None]:
    def fill(value: Any) -> None:
        value.array_value.SetInParent()
        for item in items:
            item(value.array_value.values.add())
    return fill


def _kvlist(**items: Callable[[Any], None]) -> Callable[[Any], None]:
    def fill(value: Any) -> None:
        value.kvlist_value.SetInParent()
        for key, item in items.items():
            item(value.kvlist_value.values.add(key=key.replace("EMPTY", "")).value)
    return fill


def _set(field: str, content: Any) -> Callable[[Any], None]:
    return lambda value: setattr(value, field, content)


def _string(text: str) -> Callable[[Any], None]:
    return _set("string_value", text)


def _empty(value: Any) -> None:
    pass


# name -> (how to fill the AnyValue, the rendered text, or None where only the match with 0001 is checked)
CASES: dict[str, tuple[Callable[[Any], None], str | None]] = {
    "str": (_string("claude-sonnet-4-5"), "claude-sonnet-4-5"),
    "str.empty": (_string(""), ""),
    "str.unicode": (_string("héllo \u2603 \"quoted\"\n"), "héllo \u2603 \"quoted\"\n"),
    "str.200": (_string("x" * 200), "x" * 200),  # a two-byte length
    "str.20000": (_string("y" * 20_000), "y" * 20_000),  # three bytes
    "str.newlines": (_string("\n" * 300), "\n" * 300),
    "bool.true": (_set("bool_value", True), "true"),
    "bool.false": (_set("bool_value", False), "false"),
    "int.zero": (_set("int_value", 0), "0"),
    "int.small": (_set("int_value", 812), "812"),
    "int.negative": (_set("int_value", -1), "-1"),
    "int.max": (_set("int_value", 2**63 - 1), str(2**63 - 1)),
    "int.min": (_set("int_value", -(2**63)), str(-(2**63))),
    "int.big": (_set("int_value", 2**62 + 12345), str(2**62 + 12345)),
    "double": (_set("double_value", 0.5), "0.5"),
    "double.zero": (_set("double_value", 0.0), "0"),
    "double.negative": (_set("double_value", -1234.5678), "-1234.5678"),
    "double.huge": (_set("double_value", 1e300), None),
    "double.nan": (_set("double_value", math.nan), "nan"),
    "double.inf": (_set("double_value", -math.inf), "-inf"),
    "bytes": (_set("bytes_value", b"\x00\x01\xfe\xff"), "AAH+/w=="),
    "bytes.empty": (_set("bytes_value", b""), ""),
    "empty": (_empty, ""),
    "array.strings": (_array(_string("end_turn"), _string("tool_use")), '["end_turn","tool_use"]'),
    "array.one": (_array(_string("stop")), '["stop"]'),
    "array.empty": (_array(), ""),
    "array.mixed": (_array(_string("a\"b"), _set("bool_value", True), _set("int_value", -7), _set("double_value", 2.5),
                           _set("double_value", math.inf), _set("bytes_value", b"\xff"), _empty, _string("")),
                    '["a\\"b",true,-7,2.5,null,"\\/w==",null,""]'),  # ClickHouse escapes /
    "array.long": (_array(*[_string(f"value {i} " + "z" * 150) for i in range(40)]), None),
    "array.nested": (_array(_array(_string("deep")), _kvlist(k=_string("v")), _string("flat")),
                     '[null,null,"flat"]'),
    "array.newlines": (_array(_string("\n\n\n"), _string("\n")), '["\\n\\n\\n","\\n"]'),
    "kvlist": (_kvlist(role=_string("user"), n=_set("int_value", 3), ok=_set("bool_value", False)),
               '{"role":"user","n":3,"ok":false}'),
    "kvlist.empty": (_kvlist(), ""),
    "kvlist.emptykey": (_kvlist(EMPTY=_string("v"), k=_empty), '{"":"v","k":null}'),
    "kvlist.nested": (_kvlist(a=_array(_string("x")), b=_string("y")), '{"a":null,"b":"y"}'),
    "kvlist.long": (_kvlist(**{f"key{i}": _string("w" * 300) for i in range(10)}), None),
    # Large containers: the decoder's splitter must not walk them step by step (seconds per value).
    "array.doubles": (_array(*[_set("double_value", i / 7) for i in range(10_000)]), None),
    "array.big_newlines": (_array(_string("\n" * 5_000), _string("x")), None),
    "array.doubles_nan": (_array(_set("double_value", 0.5), _set("double_value", math.nan),
                                 _set("double_value", -math.inf)), "[0.5,null,null]"),
}


# Values an OTLP parser accepts but no OTel SDK writes: the decoder reads what 0001's columns read.
ODD: dict[str, bytes] = {
    "odd.strindex": b"\x40\x01",  # string_value_strindex: not rendered
    "odd.long_varint": b"\x18\x85\x80\x80\x00",  # 5 in five bytes
    # Maps as the .NET OTLP exporter writes them, lengths padded to four bytes.
    "odd.padded_map": bytes.fromhex("329f8080000a8e8080000a04726f6c6512060a04757365720a878080000a016e12021803"),
    "odd.padded_empty_map": bytes.fromhex("3280808000"),
    "odd.padded_bool_map": bytes.fromhex("328d8080000a888080000a026f6b12021000"),
}
# Where 0014 deliberately differs: an AnyValue is read as one field to its end (0014's header), so a second
# field after a string stays in it; the typed columns keep the first field alone.
ODD_DIFFERENT: dict[str, tuple[bytes, str, str]] = {  # bytes, as 0014 renders them, as 0001 does
    "odd.two_fields": (b"\x0a\x01a\x18\x05", "a\x18\x05", "a"),  # two fields of the oneof
    "odd.unknown_after": (b"\x0a\x01a\x78\x01", "a\x78\x01", "a"),  # an unknown field after the value
    "odd.array_two_fields": (b"\x2a\x07\x0a\x05\x0a\x01b\x10\x01", '["b\\u0010\\u0001"]', '["b"]'),
}


def _ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return bytes([tag]) + encoder._VarintBytes(len(payload)) + payload


def _key_values() -> bytes:
    """Every case as KeyValue messages (without their field tags)."""
    out = []
    for key, (fill, _) in CASES.items():
        value = common_pb2.AnyValue()
        fill(value)
        out.append(common_pb2.KeyValue(key=key, value=value).SerializeToString())
    odd = {**ODD, **{key: raw for key, (raw, _, _) in ODD_DIFFERENT.items()}}
    out += [_ld(0x0A, key.encode()) + _ld(0x12, raw) for key, raw in odd.items()]
    return out


def test_span_attributes_render_like_every_other_list(collector: Collector) -> None:
    fields = new_span(name="rendering")
    kvs = _key_values()
    # The same list on the resource (field 1), the span (9), its event (3) and its link (4): written by hand
    # so that the odd values reach the store as they are.
    def listed(tag: int) -> bytes:
        return b"".join(_ld(tag, kv) for kv in kvs)

    span = trace_pb2.Span(**fields)
    event = trace_pb2.Span.Event(name="e", time_unix_nano=fields["start_time_unix_nano"]).SerializeToString()
    link = trace_pb2.Span.Link(trace_id=os.urandom(16), span_id=os.urandom(8)).SerializeToString()
    span_bytes = (span.SerializeToString() + listed(0x4A) + _ld(0x5A, event + listed(0x1A))
                  + _ld(0x6A, link + listed(0x22)))
    resource = _ld(0x0A, common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(
        string_value="rendering")).SerializeToString()) + listed(0x0A)
    body = _ld(0x0A, _ld(0x0A, resource) + _ld(0x12, _ld(0x12, span_bytes)))
    status, _, raw = post(f"{collector.http_url}/v1/traces", body)
    assert status == 200 and not trace_service_pb2.ExportTraceServiceResponse.FromString(raw).HasField(
        "partial_success")
    row = collector.wait_rows(
        "SELECT ResourceAttributes, SpanAttributes, `Events.Attributes`, `Links.Attributes` FROM llmloop.spans "
        f"WHERE TraceId = '{fields['trace_id'].hex()}'", 1)[0]
    resource_map = {k: v for k, v in row["ResourceAttributes"].items() if k != "service.name"}
    assert sorted(row["SpanAttributes"]) == sorted([*CASES, *ODD, *ODD_DIFFERENT])
    for key in [*CASES, *ODD]:  # (ODD_DIFFERENT below)
        assert row["SpanAttributes"][key] == resource_map[key], key
        assert row["Events.Attributes"][0][key] == resource_map[key] == row["Links.Attributes"][0][key], key
        expected = CASES[key][1] if key in CASES else None
        if expected is not None:
            assert row["SpanAttributes"][key] == expected, key
    assert json.loads(row["SpanAttributes"]["array.long"])[39].startswith("value 39 zzz")
    assert json.loads(row["SpanAttributes"]["kvlist.long"])["key9"] == "w" * 300
    assert len(json.loads(row["SpanAttributes"]["array.doubles"])) == 10_000
    assert json.loads(row["SpanAttributes"]["array.big_newlines"]) == ["\n" * 5_000, "x"]
    assert (row["SpanAttributes"]["odd.padded_map"], row["SpanAttributes"]["odd.padded_empty_map"],
            row["SpanAttributes"]["odd.padded_bool_map"]) == ('{"role":"user","n":3}', "", '{"ok":false}')
    assert (row["SpanAttributes"]["odd.strindex"], row["SpanAttributes"]["odd.long_varint"]) == ("", "5")
    for key, (_, raw_rendering, typed_rendering) in ODD_DIFFERENT.items():
        assert (row["SpanAttributes"][key], resource_map[key]) == (raw_rendering, typed_rendering), key
