"""The ingest view's convention mapping, mechanism by mechanism (spans built by the OTel SDK here).

What real libraries emit is tested against their captured exports in test_foreign.py; these tests pin
the mapping rules themselves: aliases and their priority, value spellings, units, token semantics,
flattened-message rebuilding and its index bound, events, and that mapped attributes are kept.
"""

from __future__ import annotations

import json
import uuid

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from llmloop.semconv import mapping
from tests.conftest import Collector

COLUMNS = ("SpanAttributes, Provider, Operation, RequestModel, ResponseModel, ConfigId, InputTokens, OutputTokens, "
           "CacheReadTokens, CacheWriteTokens, ReasoningTokens, TimeToFirstChunk, FinishReasons, ErrorType, "
           "ConversationId, InputMessages, OutputMessages, SystemInstructions")


def send(collector: Collector, attributes: dict, *, scope: str = "test.scope", events: tuple = (),
         error: bool = False) -> dict:
    """Export one span with `attributes` (and events) through the real OTLP/HTTP exporter; its stored row."""
    provider = TracerProvider(resource=Resource.create({"service.name": "conventions"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_url}/v1/traces")))
    marker = uuid.uuid4().hex
    with provider.get_tracer(scope).start_as_current_span(marker, attributes=attributes) as span:
        for name, attrs in events:
            span.add_event(name, attrs)
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    rows = collector.wait_rows(f"SELECT {COLUMNS} FROM llmloop.spans WHERE SpanName = '{marker}'", 1)
    assert rows, collector.logs()
    return rows[0]


def test_canonical_names_win_over_aliases_and_stay_in_span_attributes(collector: Collector) -> None:
    row = send(collector, {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.prompt_tokens": 99,
                           "llm.token_count.completion": 7, "gen_ai.system": "Anthropic",
                           "llm.model_name": "claude-sonnet-4-5-20250929", "gen_ai.operation.name": "chat",
                           "llm.invocation_parameters": '{"model": "claude-sonnet-4-5", "max_tokens": 64}'})
    assert row["InputTokens"] == 10
    assert row["OutputTokens"] == 7
    assert row["Provider"] == "anthropic"
    assert row["RequestModel"] == "claude-sonnet-4-5"  # from the JSON of the request parameters
    assert row["ResponseModel"] == "claude-sonnet-4-5-20250929"
    assert row["SpanAttributes"]["gen_ai.usage.prompt_tokens"] == "99"
    assert row["SpanAttributes"]["gen_ai.system"] == "Anthropic"


@pytest.mark.parametrize(("attributes", "provider"), [
    ({"gen_ai.provider.name": "azure.ai.openai"}, "azure.ai.openai"),
    ({"llm.provider": "aws", "llm.system": "anthropic"}, "aws.bedrock"),
    ({"ai.model.provider": "openai.chat"}, "openai"),
    ({"ai.model.provider": "amazon-bedrock"}, "aws.bedrock"),
    ({"ai.model.provider": "google.vertex.chat"}, "gcp.vertex_ai"),
    ({"gen_ai.system": "my-own-provider"}, "my-own-provider"),
])
def test_provider_flavours(collector: Collector, attributes: dict, provider: str) -> None:
    assert send(collector, attributes)["Provider"] == provider


@pytest.mark.parametrize(("attributes", "operation"), [
    ({"openinference.span.kind": "LLM"}, "chat"),
    ({"openinference.span.kind": "EMBEDDING"}, "embeddings"),
    ({"llm.request.type": "completion"}, "text_completion"),
    ({"ai.operationId": "ai.streamText.doStream"}, "chat"),
    ({"ai.operationId": "ai.streamText"}, "invoke_workflow"),
    ({"gen_ai.operation.name": "generate_content"}, "generate_content"),
])
def test_operation_spellings(collector: Collector, attributes: dict, operation: str) -> None:
    assert send(collector, attributes)["Operation"] == operation


def test_milliseconds_become_seconds_and_single_finish_reason_becomes_a_list(collector: Collector) -> None:
    row = send(collector, {"ai.response.msToFirstChunk": 250.0, "ai.response.finishReason": "stop"})
    assert row["TimeToFirstChunk"] == pytest.approx(0.25)
    assert row["FinishReasons"] == ["stop"]


def test_exception_event_and_error_status_give_an_error_type(collector: Collector) -> None:
    row = send(collector, {"llm.model_name": "m"}, error=True,
               events=(("exception", {"exception.type": "anthropic.RateLimitError"}),))
    assert row["ErrorType"] == "anthropic.RateLimitError"
    assert send(collector, {"llm.model_name": "m"}, error=True)["ErrorType"] == "_OTHER"
    assert send(collector, {"llm.model_name": "m"})["ErrorType"] == ""


def test_openllmetry_flattened_messages_rebuilt(collector: Collector) -> None:
    row = send(collector, {
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Weather in Paris?",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "call_1", "gen_ai.completion.0.tool_calls.0.name": "weather",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}',
    })
    assert json.loads(row["InputMessages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    assert json.loads(row["OutputMessages"]) == [{
        "role": "assistant", "finish_reason": "tool_calls",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}],
    }]
    assert row["FinishReasons"] == ["tool_calls"]


def test_openinference_flattened_messages_rebuilt(collector: Collector) -> None:
    row = send(collector, {
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.contents.0.message_content.type": "text",
        "llm.input_messages.0.message.contents.0.message_content.text": "Hi",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Hello!",
    })
    assert json.loads(row["InputMessages"]) == [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
    assert json.loads(row["OutputMessages"]) == [{"role": "assistant",
                                                  "parts": [{"type": "text", "content": "Hello!"}]}]


def test_flattened_index_is_bounded_by_what_is_present(collector: Collector) -> None:
    row = send(collector, {"gen_ai.prompt.999999.role": "user", "gen_ai.prompt.999999.content": "x",
                           "gen_ai.prompt.3.role": "user", "gen_ai.prompt.3.content": "y",
                           "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "z"})
    messages = json.loads(row["InputMessages"])
    assert [m["parts"][0]["content"] for m in messages] == ["z", "y", "x"]


def test_json_messages_and_system_from_requests_and_vercel(collector: Collector) -> None:
    row = send(collector, {
        "input.value": json.dumps({"system": [{"type": "text", "text": "Sys"}],
                                   "messages": [{"role": "user", "content": "Q"}]}),
        "output.value": json.dumps({"role": "assistant", "stop_reason": "end_turn",
                                    "content": [{"type": "text", "text": "A"},
                                                {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}]}),
    })
    assert json.loads(row["SystemInstructions"]) == [{"type": "text", "content": "Sys"}]
    assert json.loads(row["InputMessages"]) == [{"role": "user", "parts": [{"type": "text", "content": "Q"}]}]
    assert json.loads(row["OutputMessages"]) == [{
        "role": "assistant", "finish_reason": "end_turn",
        "parts": [{"type": "text", "content": "A"},
                  {"type": "tool_call", "id": "t1", "name": "f", "arguments": {"x": 1}}],
    }]
    vercel = send(collector, {
        "ai.prompt.messages": json.dumps([{"role": "user", "content": [{"type": "text", "text": "Q2"}]}]),
        "ai.response.text": "A2", "ai.response.finishReason": "stop",
    })
    assert json.loads(vercel["InputMessages"]) == [{"role": "user", "parts": [{"type": "text", "content": "Q2"}]}]
    assert json.loads(vercel["OutputMessages"]) == [{"role": "assistant", "finish_reason": "stop",
                                                     "parts": [{"type": "text", "content": "A2"}]}]


def test_operation_details_event_fills_the_call(collector: Collector) -> None:
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}])
    row = send(collector, {"gen_ai.operation.name": "chat"}, events=(
        ("gen_ai.client.inference.operation.details",
         {"gen_ai.input.messages": messages, "gen_ai.usage.input_tokens": 5, "gen_ai.provider.name": "openai"}),))
    assert row["InputMessages"] == messages
    assert row["InputTokens"] == 5
    assert row["Provider"] == "openai"


def test_config_id_from_other_libraries_metadata(collector: Collector) -> None:
    row = send(collector, {"traceloop.association.properties.llmloop.config.id": "triage@1"})
    assert row["ConfigId"] == "triage@1"


def test_every_mapping_row_is_loaded(collector: Collector) -> None:
    rows = collector.sql("SELECT mapping, key FROM llmloop.conventions FINAL "
                         "WHERE generation = (SELECT max(generation) FROM llmloop.conventions)")
    assert {(r["mapping"], r["key"]) for r in rows} == {(m, k) for m, k, _ in mapping.tables()}
