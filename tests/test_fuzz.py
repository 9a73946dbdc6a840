"""Fuzzing the decoders: any body yields a decoded request or BadRequest, never another error."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from llmloop.collector.decode import LOGS, TRACES, decode
from llmloop.collector.errors import BadRequest

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_body(spans: int = 3) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = scope.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"s{i}")
        span.attributes.add(key="k").value.string_value = "v" * i
    return request.SerializeToString()


def check(signal, body: bytes, json_body: bool) -> None:
    try:
        decoded = decode(signal, body, json_body)
    except BadRequest as exc:
        assert str(exc)
        return
    assert decoded.accepted >= 0 and decoded.rejected >= 0
    # Whatever is accepted re-parses as a request of the right type (strings may hold any bytes:
    # ClickHouse stores them as such).
    signal.lenient_request.FromString(decoded.payload)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(body: bytes) -> None:
    check(TRACES, body, json_body=False)
    check(LOGS, body, json_body=False)
    check(TRACES, body, json_body=True)


@FUZZ
@given(st.data())
def test_mutated_valid_requests(data) -> None:
    body = bytearray(valid_body())
    for _ in range(data.draw(st.integers(1, 8))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(body) - 1)))
        if action == "flip" and body:
            body[pos] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del body[pos:]
        else:
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    check(TRACES, bytes(body), json_body=False)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


@FUZZ
@given(json_values)
def test_random_json(value) -> None:
    check(TRACES, json.dumps(value).encode(), json_body=True)


@FUZZ
@given(st.lists(st.dictionaries(
    st.sampled_from(["traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "attributes",
                     "links", "status", "events", "flags"]),
    json_values, max_size=6), max_size=5))
def test_json_spans_with_wrong_types(spans) -> None:
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()
    check(TRACES, body, json_body=True)


def test_deeply_nested_anyvalue_is_a_bad_request_or_decoded() -> None:
    value = {"stringValue": "bottom"}
    for _ in range(200):
        value = {"arrayValue": {"values": [value]}}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0" * 31 + "1", "spanId": "0" * 15 + "1", "attributes": [{"key": "deep", "value": value}]}]}]}]})
    check(TRACES, body.encode(), json_body=True)
