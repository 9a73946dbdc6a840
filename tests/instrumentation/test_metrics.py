"""GenAI metrics: names, units, bucket advice, labels, and the queue that keeps them off the request path."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmloop.instrumentation import metrics as metrics_module
from llmloop.instrumentation import use_config
from llmloop.instrumentation.metrics import GenAIMetrics, metrics_for
from llmloop.semconv import metrics as M
from tests.instrumentation.conftest import GPT, FakeProvider, Otel

MESSAGES: list[Any] = [{"role": "user", "content": "hello fake world"}]


def by_name(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_instruments_follow_the_conventions(otel: Otel, cid: str, fake_provider: FakeProvider) -> None:
    client = fake_provider.openai_client()
    with use_config(cid, arm="canary"):
        list(client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True,
                                            extra_headers={"x-fake-usage": "input=9,output=4"}))
    found = by_name(otel.reader)
    duration = found[M.CLIENT_OPERATION_DURATION]
    assert duration.unit == "s"
    [point] = [p for p in duration.data.data_points if p.attributes.get("llmloop.config.id") == cid]
    assert list(point.explicit_bounds) == list(M.DURATION_BUCKETS)
    assert point.attributes["llmloop.rollout.arm"] == "canary"
    assert point.attributes["gen_ai.operation.name"] == "chat"
    assert point.attributes["gen_ai.request.model"] == GPT
    assert point.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    tokens = found[M.CLIENT_TOKEN_USAGE]
    assert tokens.unit == "{token}"
    points = {p.attributes["gen_ai.token.type"]: p for p in tokens.data.data_points
              if p.attributes.get("llmloop.config.id") == cid}
    assert (points["input"].sum, points["output"].sum) == (9, 4)
    assert list(points["input"].explicit_bounds) == list(M.TOKEN_BUCKETS)
    [ttfc] = [p for p in found[M.CLIENT_TIME_TO_FIRST_CHUNK].data.data_points
              if p.attributes.get("llmloop.config.id") == cid]
    assert list(ttfc.explicit_bounds) == list(M.TIME_TO_FIRST_CHUNK_BUCKETS)
    assert 0 < ttfc.sum < point.sum


def test_no_time_to_first_chunk_for_plain_calls(otel: Otel, cid: str, fake_provider: FakeProvider) -> None:
    with use_config(cid):
        fake_provider.openai_client().chat.completions.create(model=GPT, messages=MESSAGES)
    assert otel.points(M.CLIENT_OPERATION_DURATION, cid)
    assert otel.points(M.CLIENT_TIME_TO_FIRST_CHUNK, cid) == []


def test_queue_is_bounded_and_reports_drops(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(metrics_module, "MAX_PENDING", 5)
    monkeypatch.setattr(metrics_module, "DRAIN_AT", 10**9)
    reader = InMemoryMetricReader()
    queue = GenAIMetrics(MeterProvider(metric_readers=[reader]).get_meter("t"))
    for i in range(8):
        queue.add((0.1, None, i, None, {"gen_ai.operation.name": "chat", "llmloop.config.id": "q@1"}))
    assert len(queue.pending) == 5 and queue.dropped == 3
    found = by_name(reader)
    [point] = found[M.CLIENT_TOKEN_USAGE].data.data_points
    assert point.count == 5 and point.sum == 3 + 4 + 5 + 6 + 7  # the newest calls are kept
    assert "dropped" in caplog.text
    assert not queue.pending


def test_drain_thread_empties_the_queue_under_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "DRAIN_AT", 20)
    queue = GenAIMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("t"))
    for _ in range(25):
        queue.add((0.1, 0.05, 1, 1, {"gen_ai.operation.name": "chat"}))
    deadline = time.monotonic() + 10
    while queue.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not queue.pending


def test_one_queue_per_meter() -> None:
    meter = MeterProvider().get_meter("t")
    assert metrics_for(meter) is metrics_for(meter)


def test_content_events(otel: Otel, cid: str, fake_provider: FakeProvider) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    from llmloop.instrumentation import CaptureMode

    exporter = InMemoryLogRecordExporter()
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    otel.instrument(capture=CaptureMode.EVENT_ONLY, logger_provider=logs)
    try:
        with use_config(cid):
            fake_provider.openai_client().chat.completions.create(
                model=GPT, messages=[{"role": "system", "content": "be brief"}, *MESSAGES])
    finally:
        otel.instrument(capture=CaptureMode.NO_CONTENT)
    span = otel.one(cid)
    assert "gen_ai.input.messages" not in span.attributes  # EVENT_ONLY: nothing on the span
    [record] = [r.log_record for r in exporter.get_finished_logs()
                if (r.log_record.attributes or {}).get("llmloop.config.id") == cid]
    assert record.event_name == "gen_ai.client.inference.operation.details"
    assert "hello fake world" in record.attributes["gen_ai.input.messages"]
    assert "echo: hello fake world" in record.attributes["gen_ai.output.messages"]
    assert record.span_id == span.context.span_id
