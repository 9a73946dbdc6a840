"""End to end: real OTel SDK exporters and hand-written OTLP bodies into a running collector."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.conftest import Collector


def post(url: str, body: bytes, content_type: str = "application/x-protobuf",
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def span_request(*spans: dict, service: str = "svc") -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    resource.resource.attributes.add(key="service.name").value.string_value = service
    scope = resource.scope_spans.add()
    scope.scope.name = "test"
    for fields in spans:
        scope.spans.add(**fields)
    return request


def new_span(**overrides) -> dict:
    fields = dict(trace_id=os.urandom(16), span_id=os.urandom(8), name="chat", kind=3,
                  start_time_unix_nano=1_790_000_000_123_456_789, end_time_unix_nano=1_790_000_001_000_000_000)
    fields.update(overrides)
    return fields


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_exporter_span_stored_with_full_fidelity(collector: Collector, protocol: str) -> None:
    if protocol == "grpc":
        exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{collector.grpc_port}", insecure=True)
    else:
        exporter = HttpSpanExporter(endpoint=f"{collector.http_url}/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": f"sdk-{protocol}", "deployment": "t"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("llmloop.tests", "1.2.3")
    with tracer.start_as_current_span("parent") as parent:
        link_ctx = parent.get_span_context()
        links = [Link(link_ctx, {"why": "t"})]
        with tracer.start_as_current_span("chat claude", kind=SpanKind.CLIENT, links=links) as span:
            span.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.response.model": "claude-sonnet-4-5-20250929",
                "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 0,
                "gen_ai.usage.cache_read.input_tokens": 100, "gen_ai.usage.cache_write.input_tokens": 7,
                "gen_ai.usage.reasoning.output_tokens": 3, "gen_ai.response.time_to_first_chunk": 0.25,
                "gen_ai.response.finish_reasons": ("end_turn", "tool_use"), "error.type": "",
                "gen_ai.conversation.id": "conv-1", "llmloop.config.id": "support@2026-06-03.1",
                "llmloop.config.fingerprint": "fp123", "llmloop.rollout.name": "support",
                "llmloop.rollout.arm": "canary", "gen_ai.request.temperature": 0.5, "flag": True,
                "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
            })
            span.add_event("gen_ai.choice", {"index": 0})
            span.set_status(Status(StatusCode.ERROR, "boom"))
            ctx = span.get_span_context()
    provider.shutdown()
    trace_id, span_id = f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
    rows = collector.wait_rows(f"SELECT * FROM llmloop.spans WHERE TraceId = '{trace_id}' ORDER BY SpanName", 2)
    assert [r["SpanName"] for r in rows] == ["chat claude", "parent"]
    row = rows[0]
    assert row["SpanId"] == span_id and row["ParentSpanId"] == f"{link_ctx.span_id:016x}"
    assert row["SpanKind"] == "Client" and row["StatusCode"] == "Error" and row["StatusMessage"] == "boom"
    assert row["ServiceName"] == f"sdk-{protocol}" and row["ResourceAttributes"]["deployment"] == "t"
    assert (row["ScopeName"], row["ScopeVersion"]) == ("llmloop.tests", "1.2.3")
    assert row["SpanAttributes"]["gen_ai.usage.input_tokens"] == "812"
    assert row["SpanAttributes"]["flag"] == "true"
    assert row["SpanAttributes"]["gen_ai.request.temperature"] == "0.5"
    assert json.loads(row["SpanAttributes"]["gen_ai.response.finish_reasons"]) == ["end_turn", "tool_use"]
    assert (row["Provider"], row["Operation"], row["RequestModel"], row["ResponseModel"]) == (
        "anthropic", "chat", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929")
    assert (row["ConfigId"], row["ConfigFingerprint"], row["RolloutName"], row["RolloutArm"]) == (
        "support@2026-06-03.1", "fp123", "support", "canary")
    assert (row["InputTokens"], row["OutputTokens"], row["CacheReadTokens"], row["CacheWriteTokens"],
            row["ReasoningTokens"]) == ("812", "0", "100", "7", "3") or (
            row["InputTokens"], row["OutputTokens"], row["CacheReadTokens"]) == (812, 0, 100)
    assert row["TimeToFirstChunk"] == 0.25
    assert row["FinishReasons"] == ["end_turn", "tool_use"]
    assert row["ConversationId"] == "conv-1"
    assert json.loads(row["InputMessages"])[0]["role"] == "user"
    assert row["Events.Name"] == ["gen_ai.choice"] and row["Events.Attributes"] == [{"index": "0"}]
    assert row["Links.TraceId"] == [trace_id] and row["Links.SpanId"] == [f"{link_ctx.span_id:016x}"]
    assert row["Links.Attributes"] == [{"why": "t"}]
    assert row["Duration"] not in (0, "0")
    # A span without GenAI attributes gets empty typed columns and NULL token counts.
    assert rows[1]["InputTokens"] is None and rows[1]["ConfigId"] == "" and rows[1]["FinishReasons"] == []


def test_timestamps_keep_nanoseconds(collector: Collector) -> None:
    fields = new_span()
    status, _, body = post(f"{collector.http_url}/v1/traces", span_request(fields).SerializeToString())
    assert status == 200 and not trace_service_pb2.ExportTraceServiceResponse.FromString(body).HasField(
        "partial_success")
    rows = collector.wait_rows(
        f"SELECT toUnixTimestamp64Nano(Timestamp) AS ns, Duration FROM llmloop.spans "
        f"WHERE TraceId = '{fields['trace_id'].hex()}'", 1)
    assert int(rows[0]["ns"]) == 1_790_000_000_123_456_789
    assert int(rows[0]["Duration"]) == 876_543_211


def test_inserted_batches_are_stored_as_compact_parts(collector: Collector) -> None:
    # ~16 MB uncompressed: over ClickHouse's default threshold for Wide parts (10 MB), under 0012's.
    spans = [new_span(attributes=[{"key": "payload", "value": {"string_value": f"{i:08d}" * 250}}])
             for i in range(8_000)]
    trace_ids = {s["trace_id"].hex() for s in spans}
    status, _, _ = post(f"{collector.http_url}/v1/traces", span_request(*spans).SerializeToString())
    assert status == 200
    one = min(trace_ids)
    collector.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{one}'", 1)
    parts = collector.sql("SELECT part_type, rows FROM system.parts "
                          "WHERE database = 'llmloop' AND table = 'spans' AND active")
    assert max(int(p["rows"]) for p in parts) >= 8_000
    assert {p["part_type"] for p in parts} == {"Compact"}


def test_json_body_hex_ids_integer_enums_int64_strings_and_unknown_fields(collector: Collector) -> None:
    trace_id, span_id = os.urandom(16).hex().upper(), os.urandom(8).hex()  # hex is case-insensitive
    body = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
            "futureField": {"x": 1},
            "scopeSpans": [{"scope": {"name": "manual"}, "spans": [{
                "traceId": trace_id, "spanId": span_id, "name": "chat", "kind": 3,
                "startTimeUnixNano": "1790000000000000000", "endTimeUnixNano": 1790000000500000000,
                "attributes": [
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 7}},
                    {"key": "blob", "value": {"bytesValue": "AAEC"}},
                    {"key": "kv", "value": {"kvlistValue": {"values": [
                        {"key": "a", "value": {"intValue": "1"}}, {"key": "b", "value": {"stringValue": "x"}}]}}},
                ],
                "status": {"code": 1},
                "unknownSpanField": True,
            }]}],
        }],
    }
    status, headers, raw = post(f"{collector.http_url}/v1/traces", json.dumps(body).encode(), "application/json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(raw) == {}
    rows = collector.wait_rows(f"SELECT * FROM llmloop.spans WHERE SpanId = '{span_id}'", 1)
    row = rows[0]
    assert row["TraceId"] == trace_id.lower()
    assert row["ServiceName"] == "json-svc" and row["StatusCode"] == "Ok" and row["SpanKind"] == "Client"
    assert int(row["InputTokens"]) == 42 and int(row["OutputTokens"]) == 7
    assert row["SpanAttributes"]["blob"] == "AAEC"
    assert json.loads(row["SpanAttributes"]["kv"]) == {"a": 1, "b": "x"}
    assert int(row["Duration"]) == 500_000_000


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_partial_success_rejects_bad_ids_and_keeps_neighbours(collector: Collector, encoding: str) -> None:
    good, bad = new_span(), new_span(trace_id=os.urandom(12))
    request = span_request(good, bad, new_span(span_id=b""))
    if encoding == "protobuf":
        status, _, raw = post(f"{collector.http_url}/v1/traces", request.SerializeToString())
        response = trace_service_pb2.ExportTraceServiceResponse.FromString(raw)
        assert status == 200
        assert response.partial_success.rejected_spans == 2
        assert "trace_id must be 16" in response.partial_success.error_message
    else:
        body = {"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": good["trace_id"].hex(), "spanId": good["span_id"].hex(), "name": "ok"},
            {"traceId": "not-hex!", "spanId": "0011223344556677", "name": "bad"},
            {"traceId": "00112233", "spanId": "0011223344556677", "name": "short"},
        ]}]}]}
        status, _, raw = post(f"{collector.http_url}/v1/traces", json.dumps(body).encode(), "application/json")
        assert status == 200
        partial = json.loads(raw)["partialSuccess"]
        assert int(partial["rejectedSpans"]) == 2 and "not a hex string" in partial["errorMessage"]
    rows = collector.wait_rows(f"SELECT SpanId FROM llmloop.spans WHERE TraceId = '{good['trace_id'].hex()}'", 1)
    assert [r["SpanId"] for r in rows] == [good["span_id"].hex()]


def test_grpc_partial_success(collector: Collector) -> None:
    good = new_span()
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=trace_service_pb2.ExportTraceServiceRequest.SerializeToString,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString)
        response = export(span_request(good, new_span(span_id=os.urandom(3))), timeout=10)
        assert response.partial_success.rejected_spans == 1
        assert not export(trace_service_pb2.ExportTraceServiceRequest(), timeout=10).HasField("partial_success")
        raw_export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            raw_export(b"\xff\xff\xff", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")(b"", timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert collector.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{good['trace_id'].hex()}'", 1)


@pytest.mark.parametrize(("path", "body", "content_type", "expected"), [
    ("/v1/traces", b"\xff\xfe garbage", "application/x-protobuf", 400),
    ("/v1/traces", b"{not json", "application/json", 400),
    ("/v1/traces", b"[1, 2]", "application/json", 400),
    ("/v1/traces", b"{}", "text/plain", 415),
    ("/v1/metrics", b"", "application/x-protobuf", 404),
    ("/v1/nothing", b"", "application/x-protobuf", 404),
])
def test_bad_requests_get_clear_errors(collector: Collector, path, body, content_type, expected) -> None:
    status, _, raw = post(collector.http_url + path, body, content_type)
    assert status == expected
    if expected in (400, 415) or path == "/v1/metrics":
        message = (json.loads(raw)["message"] if content_type == "application/json"
                   else status_pb2.Status.FromString(raw).message)
        assert message


def test_get_is_method_not_allowed_and_empty_request_succeeds(collector: Collector) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{collector.http_url}/v1/traces", timeout=10)
    assert err.value.code == 405
    status, _, raw = post(f"{collector.http_url}/v1/traces", b"")
    assert status == 200 and raw == b""
    status, _, raw = post(f"{collector.http_url}/v1/traces", b"{}", "application/json")
    assert status == 200 and json.loads(raw) == {}


def test_gzip_bodies_and_size_limit_after_decompression(new_collector) -> None:
    small = new_collector("--max-body-bytes", "200000")
    fields = new_span()
    body = gzip.compress(span_request(fields).SerializeToString())
    status, _, _ = post(f"{small.http_url}/v1/traces", body, headers={"Content-Encoding": "gzip"})
    assert status == 200
    assert small.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{fields['trace_id'].hex()}'", 1)
    bomb = gzip.compress(b"\x00" * 5_000_000)  # ~5 KB on the wire
    status, _, raw = post(f"{small.http_url}/v1/traces", bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and "limit" in status_pb2.Status.FromString(raw).message
    status, _, _ = post(f"{small.http_url}/v1/traces", b"\x1f\x8b broken", headers={"Content-Encoding": "gzip"})
    assert status == 400
    status, _, _ = post(f"{small.http_url}/v1/traces", b"x" * 300_000)
    assert status == 413
    with grpc.insecure_channel(f"127.0.0.1:{small.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(
                b"\x0a\x00" * 150_000, timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert small.process.poll() is None


def test_bearer_token_protects_every_endpoint(new_collector) -> None:
    secured = new_collector(token="s3cret")
    body = span_request(new_span()).SerializeToString()
    assert post(f"{secured.http_url}/v1/traces", body)[0] == 401
    assert post(f"{secured.http_url}/v1/traces", body, headers={"Authorization": "Bearer nope"})[0] == 401
    assert post(f"{secured.http_url}/v1/traces", body, headers={"Authorization": "Bearer s3cret"})[0] == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{secured.sql_port}/?query=SELECT+1", timeout=10)
    assert err.value.code == 401
    assert secured.sql("SELECT 1 AS one") == [{"one": 1}]
    with grpc.insecure_channel(f"127.0.0.1:{secured.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(body, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert export(body, timeout=10, metadata=(("authorization", "Bearer s3cret"),)) == b""


def test_logs_over_http_and_grpc(collector: Collector) -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = "log-svc"
    scope = resource.scope_logs.add()
    trace_id = os.urandom(16)
    record = scope.log_records.add(time_unix_nano=1_790_000_000_000_000_001, severity_number=9,
                                   severity_text="INFO", trace_id=trace_id, span_id=os.urandom(8),
                                   event_name="gen_ai.client.inference.operation.details")
    body_kv = record.body.kvlist_value.values.add(key="content")
    body_kv.value.string_value = "hello"
    record.attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
    scope.log_records.add(trace_id=os.urandom(5), body={"string_value": "rejected"})
    status, _, raw = post(f"{collector.http_url}/v1/logs", request.SerializeToString())
    assert status == 200
    assert logs_service_pb2.ExportLogsServiceResponse.FromString(raw).partial_success.rejected_log_records == 1
    with grpc.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
        del scope.log_records[1]
        record.severity_text = "WARN"
        channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(
            request.SerializeToString(), timeout=10)
    rows = collector.wait_rows(
        f"SELECT * FROM llmloop.logs WHERE TraceId = '{trace_id.hex()}' ORDER BY SeverityText", 2)
    assert [r["SeverityText"] for r in rows] == ["INFO", "WARN"]
    assert json.loads(rows[0]["Body"]) == {"content": "hello"}
    assert rows[0]["ServiceName"] == "log-svc" and rows[0]["SeverityNumber"] == 9
    assert rows[0]["LogAttributes"] == {"gen_ai.provider.name": "openai"}
    assert rows[0]["EventName"] == "gen_ai.client.inference.operation.details"


def test_sigterm_flushes_acknowledged_spans(new_collector, tmp_path) -> None:
    store = tmp_path / "kept"
    first = new_collector("--flush-interval", "600", store=store)
    ids = [new_span() for _ in range(50)]
    assert post(f"{first.http_url}/v1/traces", span_request(*ids).SerializeToString())[0] == 200
    assert first.stop() == 0
    assert "flushing writers" in first.logs()
    second = new_collector(store=store)
    rows = second.sql("SELECT count() AS n FROM llmloop.spans")
    assert int(rows[0]["n"]) == 50


def test_tls_on_every_port(new_collector, tmp_path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    secure = new_collector(tls=(cert, key))
    fields = new_span()
    request = urllib.request.Request(f"{secure.http_url}/v1/traces", data=span_request(fields).SerializeToString(),
                                     headers={"Content-Type": "application/x-protobuf"}, method="POST")
    with urllib.request.urlopen(request, timeout=10, context=secure.ssl_context()) as resp:
        assert resp.status == 200
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{secure.grpc_port}", credentials) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        assert export(span_request(new_span()).SerializeToString(), timeout=10) == b""
    with grpc.insecure_channel(f"127.0.0.1:{secure.grpc_port}") as channel, pytest.raises(grpc.RpcError):
        channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(b"", timeout=3)
    assert secure.wait_rows(f"SELECT 1 FROM llmloop.spans WHERE TraceId = '{fields['trace_id'].hex()}'", 1)


def test_attribute_count_and_length_are_capped_and_recorded(new_collector) -> None:
    capped = new_collector("--max-attributes", "3", "--max-attribute-length", "5")
    fields = new_span()
    request = span_request(fields)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.dropped_attributes_count = 2  # dropped by the sender already
    for i in range(6):
        span.attributes.add(key=f"k{i}").value.string_value = "héllo wörld" if i == 0 else "ok"
    event = span.events.add(time_unix_nano=fields["start_time_unix_nano"], name="e")
    event.attributes.add(key="short").value.int_value = 1
    assert post(f"{capped.http_url}/v1/traces", request.SerializeToString())[0] == 200
    row = capped.wait_rows(f"SELECT SpanAttributes, Events.Attributes AS ev FROM llmloop.spans "
                           f"WHERE TraceId = '{fields['trace_id'].hex()}'", 1)[0]
    assert row["SpanAttributes"] == {"k0": "héllo", "k1": "ok", "k2": "ok",
                                     "llmloop.dropped_attributes_count": "5", "llmloop.truncated_values_count": "1"}
    assert row["ev"] == [{"short": "1"}]


def test_spans_over_a_limit_beside_spans_within_are_each_stored_once_with_typed_columns(new_collector) -> None:
    """Each list is capped on its own (the resource, the span, an event or a link may be what is over);
    typed columns and ServiceName come from the capped lists, and no span is stored twice."""
    capped = new_collector("--max-attributes", "4", "--max-attribute-length", "10")
    typed = {"gen_ai.request.model": "m-1", "gen_ai.provider.name": "Anthropic"}  # stored as sent
    request = span_request(*(new_span(name=name) for name in ("within", "count", "event", "link")))
    spans = request.resource_spans[0].scope_spans[0].spans
    for span in spans:
        for key, value in typed.items():
            span.attributes.add(key=key).value.string_value = value
        span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 10
    for i in range(3):
        spans[1].attributes.add(key=f"extra{i}").value.string_value = "x"
    spans[2].events.add(time_unix_nano=spans[2].start_time_unix_nano, name="e", dropped_attributes_count=1)
    spans[3].links.add(trace_id=os.urandom(16), span_id=os.urandom(8)).attributes.add(key="long").value \
        .string_value = "0123456789abc"
    over_resource = request.resource_spans.add()  # a second resource, itself over both limits
    over_resource.resource.attributes.add(key="service.name").value.string_value = "a-long-service-name"
    for i in range(4):
        over_resource.resource.attributes.add(key=f"r{i}").value.string_value = "v"
    over_resource.scope_spans.add().spans.add(**new_span(name="resource")).attributes.add(
        key="gen_ai.request.model").value.string_value = "m-2"
    trace_ids = {span.trace_id.hex() for rs in request.resource_spans for span in rs.scope_spans[0].spans}
    assert post(f"{capped.http_url}/v1/traces", request.SerializeToString())[0] == 200
    in_list = ", ".join(f"'{t}'" for t in sorted(trace_ids))
    rows = capped.wait_rows(
        f"SELECT SpanName, ServiceName, SpanAttributes, ResourceAttributes, Events.Attributes AS ev, "
        f"Links.Attributes AS li, "
        f"RequestModel, Provider, InputTokens FROM llmloop.spans WHERE TraceId IN ({in_list}) ORDER BY SpanName", 5)
    assert len(rows) == 5
    by_name = {row["SpanName"]: row for row in rows}
    for name in ("within", "count", "event", "link"):
        assert (by_name[name]["RequestModel"], by_name[name]["Provider"], by_name[name]["InputTokens"]) \
            == ("m-1", "Anthropic", 10), name
        assert by_name[name]["ResourceAttributes"] == {"service.name": "svc"}
    three = {**typed, "gen_ai.usage.input_tokens": "10"}
    assert by_name["within"]["SpanAttributes"] == three
    assert by_name["count"]["SpanAttributes"] == {**three, "extra0": "x", "llmloop.dropped_attributes_count": "2"}
    assert by_name["event"]["SpanAttributes"] == three
    assert by_name["event"]["ev"] == [{"llmloop.dropped_attributes_count": "1"}]
    assert by_name["link"]["li"] == [{"long": "0123456789", "llmloop.truncated_values_count": "1"}]
    assert by_name["resource"]["RequestModel"] == "m-2"
    assert by_name["resource"]["ResourceAttributes"] == {
        "service.name": "a-long-ser", "r0": "v", "r1": "v", "r2": "v",
        "llmloop.dropped_attributes_count": "1", "llmloop.truncated_values_count": "1"}
    assert by_name["resource"]["ServiceName"] == "a-long-ser"


def test_odd_but_decodable_spans_are_stored_beside_their_neighbours(collector: Collector) -> None:
    """Timestamps at 0 and past DateTime64's range, unknown enum values, invalid UTF-8, deep values."""
    odd = [new_span(start_time_unix_nano=0, end_time_unix_nano=0, name="t0"),
           new_span(start_time_unix_nano=2**64 - 1, end_time_unix_nano=2**64 - 1, name="tmax"),
           new_span(kind=99, name="k99"), new_span(name="abcd"), new_span(name="deep")]
    request = span_request(*odd)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[2].status.code = 7
    value = spans[4].attributes.add(key="deep").value
    for _ in range(20):
        value = value.array_value.values.add()
    value.string_value = "bottom"
    body = request.SerializeToString().replace(b"abcd", b"ab\xff\xfe")
    status, _, raw = post(f"{collector.http_url}/v1/traces", body)
    assert status == 200 and not trace_service_pb2.ExportTraceServiceResponse.FromString(raw).HasField(
        "partial_success")
    ids = ",".join(f"'{f['trace_id'].hex()}'" for f in odd)
    rows = {r["TraceId"]: r for r in collector.wait_rows(
        f"SELECT TraceId, SpanName, SpanKind, StatusCode, toYear(Timestamp) AS year, SpanAttributes "
        f"FROM llmloop.spans WHERE TraceId IN ({ids})", 5)}
    by_name = {odd[i]["name"]: rows[odd[i]["trace_id"].hex()] for i in range(5)}
    assert by_name["t0"]["year"] == 1970 and by_name["tmax"]["year"] == 2262
    assert by_name["k99"]["SpanKind"] == "Unspecified" and by_name["k99"]["StatusCode"] == "Unset"
    assert by_name["deep"]["SpanAttributes"]["deep"] == "[null]"  # deeper than the decoded depth
    assert len(by_name["abcd"]["SpanName"]) > 0


def test_memory_budget_answers_retryable_status(new_collector) -> None:
    import concurrent.futures

    tight = new_collector("--inflight-mb", "1")
    body = span_request(*[new_span(name="x" * 500) for _ in range(1500)]).SerializeToString()  # ~0.9 MB
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: post(f"{tight.http_url}/v1/traces", body), range(16)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    assert all(int(h["retry-after"]) >= 1 for s, h, _ in results if s == 503)


def test_a_lone_request_larger_than_the_memory_budget_is_accepted(new_collector) -> None:
    tight = new_collector("--inflight-mb", "1")
    body = span_request(*[new_span(name="x" * 500) for _ in range(2000)]).SerializeToString()  # ~1.2 MB
    assert len(body) > 1024 * 1024
    assert post(f"{tight.http_url}/v1/traces", body)[0] == 200
