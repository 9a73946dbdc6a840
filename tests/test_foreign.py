"""Spans exported by the real foreign instrumentations land in the same typed columns as ours.

Each fixture under tests/fixtures/foreign/ is what a library's OTLP exporter sent (see its README and
manifest.json: library versions, the calls made and the usage numbers the fake provider reported). The
test posts it to the real collector and compares every model call's row of `llmloop.genai_calls` with
what the manifest says the provider reported. What a library itself does not report is listed in
`NOT_REPORTED` (a gap of that library, not of the mapping).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from llmloop.semconv.prices import load_prices
from tests.conftest import Collector

FIXTURES = Path(__file__).parent / "fixtures" / "foreign"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
TRACES = sorted(name for name, item in MANIFEST["fixtures"].items() if item["signal"] == "traces")
QUESTION = "What is the weather in Paris?"
TOOL = "get_weather"

_USAGE = {"InputTokens", "OutputTokens", "CacheReadTokens", "CacheWriteTokens", "ReasoningTokens", "CostUsd"}

# (library, scenario kind, provider) -> columns the library does not report (or misreports) for that
# call, as seen in its export; the mapping cannot recover them. CostUsd is skipped where a token
# count it needs is missing or wrong.
NOT_REPORTED: dict[tuple[str, str, str], set[str]] = {
    # the SDK's own tracing records no output messages for streams
    ("anthropic_native", "stream", "anthropic"): {"OutputMessages"},
    # no time to first token for Anthropic streams; on errors llm.model_name is the requested model
    ("openinference", "stream", "anthropic"): {"TimeToFirstChunk"},
    ("openinference", "error", "anthropic"): {"ResponseModel"},
    # no finish reason for the Responses API
    ("openinference", "responses", "openai"): {"FinishReasons"},
    # streamed Anthropic output tokens over-counted by one (message_delta added to message_start); no TTFT
    ("openllmetry", "stream", "anthropic"): {"OutputTokens", "CostUsd", "TimeToFirstChunk"},
    # no cache writes for the Responses API
    ("openllmetry", "responses", "openai"): {"CacheWriteTokens", "CostUsd"},
    # no reasoning tokens on streams; time to first token only as a metric
    ("openllmetry", "stream", "openai"): {"ReasoningTokens", "TimeToFirstChunk"},
    # 0.40: streams carry no usage and no response model; no reasoning tokens at all
    ("openllmetry_legacy", "stream", "anthropic"): _USAGE | {"ResponseModel", "TimeToFirstChunk"},
    ("openllmetry_legacy", "stream", "openai"): _USAGE | {"TimeToFirstChunk"},
    ("openllmetry_legacy", "sync", "openai"): {"ReasoningTokens"},
    ("openllmetry_legacy", "tool_call", "openai"): {"ReasoningTokens"},
    # openai-v2 2.1b0 reports input and output tokens only; a stream's finish reason only in its log event
    ("otel_openai_v2", "sync", "openai"): {"CacheReadTokens", "ReasoningTokens", "CostUsd"},
    ("otel_openai_v2", "tool_call", "openai"): {"CacheReadTokens", "ReasoningTokens", "CostUsd"},
    ("otel_openai_v2", "stream", "openai"): {"CacheReadTokens", "ReasoningTokens", "CostUsd", "TimeToFirstChunk"},
    # embeddings report no response model
    ("vercel_ai", "embeddings", "openai"): {"ResponseModel"},
}


def post(collector: Collector, path: str, body: bytes) -> None:
    request = urllib.request.Request(f"{collector.http_url}{path}", body,
                                     {"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def load(collector: Collector, name: str) -> list[str]:
    """Post a fixture (and its logs, if any); the trace ids it holds."""
    body = (FIXTURES / name).read_bytes()
    post(collector, "/v1/traces", body)
    logs = FIXTURES / name.replace(".traces.pb", ".logs.pb")
    if logs.exists():
        post(collector, "/v1/logs", logs.read_bytes())
        logs_service_pb2.ExportLogsServiceRequest.FromString(logs.read_bytes())
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    return sorted({span.trace_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans})


def expected_cost(provider: str, model: str, day: date, usage: dict[str, int]) -> float | None:
    rows = [p for p in load_prices() if model.startswith(p.model) and p.effective_from <= day]
    if not rows:
        return None
    price = max(rows, key=lambda p: (len(p.model), p.effective_from))
    cache_read, cache_write = usage.get("cache_read", 0), usage.get("cache_creation", 0)
    write_1h = usage.get("cache_creation_1h", 0)
    total_input = usage.get("input", 0) + (cache_read + cache_write if provider == "anthropic" else 0)
    cost = (max(total_input - cache_read - cache_write, 0) * price.input
            + cache_read * (price.cache_read if price.cache_read is not None else price.input)
            + (cache_write - write_1h) * (price.cache_write if price.cache_write is not None else price.input)
            + write_1h * (price.cache_write_1h or price.cache_write or price.input)
            + usage.get("output", 0) * price.output)
    return cost / 1e6


def expectations(item: dict, call: dict) -> dict:
    """What the typed columns must hold for one call, from what the fake provider reported."""
    provider, kind, usage = item["provider"], item["kind"], call.get("usage", {})
    failed = bool(call.get("fail_status"))
    want: dict = {
        "Provider": provider,
        "Operation": "embeddings" if kind == "embeddings" else "chat",
        "RequestModel": call["model_requested"],
        "ResponseModel": "" if failed else call["model_reported"],
        "ConfigId": item.get("config_id") or "",
    }
    if failed:
        want["ErrorType"] = "<non-empty>"
        return want
    cache_read, cache_write = usage.get("cache_read"), usage.get("cache_creation")
    extra = (cache_read or 0) + (cache_write or 0) if provider == "anthropic" else 0
    want.update({
        "InputTokens": usage["input"] + extra,
        "OutputTokens": usage.get("output"),
        "CacheReadTokens": cache_read,
        "CacheWriteTokens": cache_write,
        "ReasoningTokens": usage.get("reasoning") if provider == "openai" else None,
        "ErrorType": "",
    })
    if kind != "embeddings":
        want["FinishReasons"] = "<non-empty>"
        want["InputMessages"] = QUESTION
        want["OutputMessages"] = TOOL if kind == "tool_call" and call is item["calls"][0] else "echo: "
    if kind == "stream":
        want["TimeToFirstChunk"] = "<positive>"
    return want


def mismatches(row: dict, want: dict) -> dict:
    wrong = {}
    for column, value in want.items():
        got = row[column]
        if value == "<non-empty>":
            ok = bool(got)
        elif value == "<positive>":
            ok = got is not None and got > 0
        elif column.endswith("Messages"):
            ok = bool(got) and value in got and isinstance(json.loads(got), list)
        elif column == "CacheReadTokens" and value is None:
            ok = got in (None, 0)  # some libraries report 0 for "no cache" (embeddings)
        else:
            ok = got == value
        if not ok:
            wrong[column] = (got, value)
    return wrong


@pytest.mark.parametrize("name", TRACES)
def test_foreign_fixture_fills_the_typed_columns(collector: Collector, name: str) -> None:
    item = MANIFEST["fixtures"][name]
    trace_ids = load(collector, name)
    calls = item["calls"]
    if item["scenario"] == "anthropic_sync_with_native":
        # The SDK's own span and OpenLLMetry's, in two traces, for one call: both stored, one call counted.
        stored = collector.wait_rows("SELECT ScopeName FROM llmloop.spans FINAL WHERE has({ids:Array(String)}, "
                                     "TraceId) AND ResponseId != ''", 2, ids=str(trace_ids))
        assert sorted(row["ScopeName"] for row in stored) == ["com.anthropic.sdk.python",
                                                             "opentelemetry.instrumentation.anthropic"]
    rows = collector.wait_rows("SELECT * FROM llmloop.genai_calls WHERE has({ids:Array(String)}, TraceId) "
                               "ORDER BY Timestamp", len(calls), ids=str(trace_ids))
    assert len(rows) == len(calls), f"{len(rows)} model-call rows for {len(calls)} calls"
    skip = NOT_REPORTED.get((item["library"], item["kind"], item["provider"]), set())
    problems = {}
    for index, (row, call) in enumerate(zip(rows, calls, strict=True)):
        want = {k: v for k, v in expectations(item, call).items() if k not in skip}
        wrong = mismatches(row, want)
        if not call.get("fail_status") and "CostUsd" not in skip:
            day = datetime.fromisoformat(row["Timestamp"]).replace(tzinfo=timezone.utc).date()
            cost = expected_cost(item["provider"], call["model_reported"], day, call.get("usage", {}))
            if cost is None or row["CostUsd"] is None or abs(row["CostUsd"] - cost) > 1e-9:
                wrong["CostUsd"] = (row["CostUsd"], cost)
        if wrong:
            problems[index] = wrong
    assert not problems, json.dumps(problems, default=str)
