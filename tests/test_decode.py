"""OTLP decoding: the JSON id trap, per-span rejection, and what is passed through untouched."""

from __future__ import annotations

import base64
import json
import os

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from llmloop.collector.attributes import DROPPED_KEY, TRUNCATED_KEY, AttributeLimits
from llmloop.collector.decode import LOGS, TRACES, decode
from llmloop.collector.errors import BadRequest


def test_json_hex_ids_are_not_decoded_as_base64() -> None:
    trace_id, span_id = os.urandom(16), os.urandom(8)
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": trace_id.hex(), "spanId": span_id.hex(), "parentSpanId": "", "name": "s",
         "links": [{"traceId": trace_id.hex(), "spanId": span_id.hex()}]}]}]}]}
    decoded = decode(TRACES, json.dumps(body).encode(), json_body=True)
    span = trace_service_pb2.ExportTraceServiceRequest.FromString(decoded.payload).resource_spans[0] \
        .scope_spans[0].spans[0]
    assert span.trace_id == trace_id and span.span_id == span_id and span.links[0].span_id == span_id
    assert decoded.accepted == 1 and decoded.rejected == 0


def test_valid_protobuf_is_passed_through_byte_for_byte() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    body = request.SerializeToString()
    decoded = decode(TRACES, body, json_body=False)
    assert decoded.payload is body and decoded.accepted == 1


def test_rejections_are_counted_per_item_with_reasons() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="good")
    spans.add(trace_id=bytes(16), span_id=os.urandom(8), name="zero trace")
    spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), parent_span_id=b"12", name="bad parent")
    decoded = decode(TRACES, request.SerializeToString(), json_body=False)
    assert (decoded.accepted, decoded.rejected) == (1, 2)
    assert "trace_id" in decoded.message and "parent_span_id" in decoded.message
    kept = trace_service_pb2.ExportTraceServiceRequest.FromString(decoded.payload)
    assert [s.name for s in kept.resource_spans[0].scope_spans[0].spans] == ["good"]
    response = decoded.response(TRACES)
    assert response.partial_success.rejected_spans == 2


def test_log_records_may_have_no_ids() -> None:
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "x"}},
                                                             {"traceId": "abcd"}]}]}]}
    decoded = decode(LOGS, json.dumps(body).encode(), json_body=True)
    assert (decoded.accepted, decoded.rejected) == (1, 1)


@pytest.mark.parametrize("body", [b"\x00\x01\x02garbage", b"\x0a\xff\xff\xff\xff\x0f"])
def test_undecodable_protobuf_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode(TRACES, body, json_body=False)


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[]", b'{"resourceSpans": [{"scopeSpans": [{"spans": '
                                  b'[{"name": 5, "traceId": "00", "spanId": "00"}]}]}]}'])
def test_bad_json_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode(TRACES, body, json_body=True)


def test_bytes_values_stay_base64_in_json() -> None:
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(),
        "attributes": [{"key": "b", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}}]}]}]}]}
    decoded = decode(TRACES, json.dumps(body).encode(), json_body=True)
    span = trace_service_pb2.ExportTraceServiceRequest.FromString(decoded.payload).resource_spans[0] \
        .scope_spans[0].spans[0]
    assert span.attributes[0].value.bytes_value == b"\x00\x01"


def test_invalid_utf8_in_a_string_does_not_cost_the_request() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="abcd")
    spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="good")
    body = request.SerializeToString().replace(b"abcd", b"ab\xff\xfe")
    decoded = decode(TRACES, body, json_body=False)
    assert (decoded.accepted, decoded.rejected) == (2, 0) and decoded.payload is body


def test_zero_and_empty_values_survive_re_encoding_after_a_rejection() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=b"\1" * 16, span_id=b"\1" * 8, name="good")
    good.attributes.add(key="zero").value.int_value = 0
    good.attributes.add(key="false").value.bool_value = False
    good.attributes.add(key="empty").value.string_value = ""
    spans.add(trace_id=b"\1" * 3, span_id=b"\1" * 8, name="bad")
    decoded = decode(TRACES, request.SerializeToString(), json_body=False)
    assert decoded.rejected == 1
    kept = trace_service_pb2.ExportTraceServiceRequest.FromString(decoded.payload).resource_spans[0].scope_spans[0]
    assert [kv.value.WhichOneof("value") for kv in kept.spans[0].attributes] == [
        "int_value", "bool_value", "string_value"]


def test_log_values_nested_deeper_than_the_schema_become_json_text() -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.attributes.add(key="event.name").value.string_value = "gen_ai.choice"
    body = record.body.kvlist_value.values
    body.add(key="finish_reason").value.string_value = "stop"
    message = body.add(key="message").value.kvlist_value.values
    message.add(key="role").value.string_value = "assistant"
    message.add(key="content").value.string_value = "hi"
    shallow = record.attributes.add(key="shallow").value.kvlist_value.values
    shallow.add(key="n").value.int_value = 1
    decoded = decode(LOGS, request.SerializeToString(), json_body=False)
    out = logs_service_pb2.ExportLogsServiceRequest.FromString(decoded.payload).resource_logs[0]
    stored = out.scope_logs[0].log_records[0]
    assert json.loads(stored.body.string_value) == {"finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": "hi"}}
    assert stored.attributes[1].value.WhichOneof("value") == "kvlist_value"  # readable by the schema: kept


def _attributes(holder) -> dict[str, str]:
    """An attribute list as key -> the value's one set field (as the store renders a scalar)."""
    return {kv.key: str(getattr(kv.value, kv.value.WhichOneof("value"))) for kv in holder.attributes}


def test_attribute_count_limit_applies_per_list_and_counts_what_was_dropped() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    for key in ("r0", "r1", "r2"):
        resource.resource.attributes.add(key=key).value.string_value = "v"
    spans = resource.scope_spans.add().spans
    within = spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="within")
    within.attributes.add(key="a").value.int_value = 1
    over = spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="over", dropped_attributes_count=4)
    for key in ("a", "b", "c"):
        over.attributes.add(key=key).value.int_value = 1
    event = over.events.add(name="e", dropped_attributes_count=1)
    event.attributes.add(key="x").value.bool_value = True
    link = over.links.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    for key in ("l0", "l1", "l2"):
        link.attributes.add(key=key).value.string_value = "v"
    decoded = decode(TRACES, request.SerializeToString(), False, AttributeLimits(max_count=2))
    kept = trace_service_pb2.ExportTraceServiceRequest.FromString(decoded.payload).resource_spans[0]
    spans = kept.scope_spans[0].spans
    assert _attributes(kept.resource) == {"r0": "v", "r1": "v", DROPPED_KEY: "1"}
    assert _attributes(spans[0]) == {"a": "1"} and spans[0].dropped_attributes_count == 0
    assert _attributes(spans[1]) == {"a": "1", "b": "1", DROPPED_KEY: "5"}  # 4 by the sender, 1 here
    assert _attributes(spans[1].events[0]) == {"x": "True", DROPPED_KEY: "1"}
    assert _attributes(spans[1].links[0]) == {"l0": "v", "l1": "v", DROPPED_KEY: "1"}
    assert decoded.accepted == 2


def test_attribute_length_limit_cuts_strings_in_characters_at_any_depth_as_the_otel_sdk_does() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    span.attributes.add(key="text").value.string_value = "héllo wörld"
    span.attributes.add(key="short").value.string_value = "ok"
    span.attributes.add(key="int").value.int_value = 1234567
    span.attributes.add(key="bytes").value.bytes_value = b"\x00\x01\x02\x03\x04\x05"
    values = span.attributes.add(key="list").value.array_value.values
    for item in ("abcdefg", "hi"):
        values.add().string_value = item
    span.attributes.add(key="map").value.kvlist_value.values.add(key="k").value.string_value = "0123456789"
    body = request.SerializeToString().replace(b"0123456789", b"0123\xff56789")  # invalid UTF-8 stays bytes
    decoded = decode(TRACES, body, False, AttributeLimits(max_length=5))
    capped = {kv.key.decode(): kv.value for kv in TRACES.lenient_request.FromString(decoded.payload)
              .resource_spans[0].scope_spans[0].spans[0].attributes}
    assert capped["text"].string_value == "héllo".encode() and capped["short"].string_value == b"ok"
    assert capped["int"].int_value == 1234567 and capped["bytes"].bytes_value == b"\x00\x01\x02\x03\x04\x05"
    assert [v.string_value for v in capped["list"].array_value.values] == [b"abcde", b"hi"]
    assert capped["map"].kvlist_value.values[0].value.string_value == b"0123\xff"
    assert capped[TRUNCATED_KEY].string_value == b"3"


def test_limits_apply_to_json_bodies_and_log_scopes_and_leave_the_rest_untouched() -> None:
    body = {"resourceLogs": [{"scopeLogs": [{
        "scope": {"name": "s", "attributes": [{"key": f"s{i}", "value": {"stringValue": "v"}} for i in range(3)]},
        "logRecords": [{"body": {"stringValue": "b" * 100},
                        "attributes": [{"key": "long", "value": {"stringValue": "x" * 20}}]}]}]}]}
    decoded = decode(LOGS, json.dumps(body).encode(), True, AttributeLimits(max_count=2, max_length=10))
    scope = logs_service_pb2.ExportLogsServiceRequest.FromString(decoded.payload).resource_logs[0].scope_logs[0]
    assert _attributes(scope.scope) == {"s0": "v", "s1": "v", DROPPED_KEY: "1"}
    assert _attributes(scope.log_records[0]) == {"long": "x" * 10, TRUNCATED_KEY: "1"}
    assert scope.log_records[0].body.string_value == "b" * 100  # a body is not an attribute


def test_no_length_limit_by_default_and_nothing_rewritten_within_the_limits() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    span.attributes.add(key="gen_ai.input.messages").value.string_value = "m" * (3 * 1024 * 1024)
    body = request.SerializeToString()
    assert decode(TRACES, body, json_body=False).payload is body
