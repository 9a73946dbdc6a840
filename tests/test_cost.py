"""Cost at query time: tokens x the price in force on the span's date, via llmloop.genai_calls."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llmloop import queries
from tests.conftest import Collector


def call(collector: Collector, day: str, attributes: dict) -> dict:
    """Export one GenAI span dated `day` and return its genai_calls row."""
    provider = TracerProvider(resource=Resource.create({"service.name": "cost"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_url}/v1/traces")))
    start = int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1e9)
    marker = uuid.uuid4().hex
    span = provider.get_tracer("cost").start_span(marker, start_time=start,
                                                   attributes={"gen_ai.operation.name": "chat", **attributes})
    span.end(end_time=start + 1_000_000)
    provider.shutdown()
    rows = collector.wait_rows(f"SELECT PriceModel, CostUsd FROM llmloop.genai_calls WHERE SpanName = '{marker}'", 1)
    assert rows, collector.logs()
    return rows[0]


def tokens(model: str, provider: str, input_: int, output: int, **extra: int) -> dict:
    attrs = {"gen_ai.response.model": model, "gen_ai.provider.name": provider,
             "gen_ai.usage.input_tokens": input_, "gen_ai.usage.output_tokens": output}
    attrs.update({f"gen_ai.usage.{key}.input_tokens": value for key, value in extra.items()})
    return attrs


# Claude Sonnet 4.5 list prices per 1M tokens: input 3, output 15, cache read 0.30, 5-minute write 3.75.
SONNET_45 = (700 * 3 + 200 * 0.30 + 100 * 3.75 + 500 * 15) / 1e6


@pytest.mark.parametrize(("model", "provider"), [
    ("claude-sonnet-4-5-20250929", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock"),
    ("claude-sonnet-4-5@20250929", "gcp.vertex_ai"),
])
def test_cache_aware_cost_and_model_name_patterns(collector: Collector, model: str, provider: str) -> None:
    row = call(collector, "2025-11-01", tokens(model, provider, 1000, 500, cache_read=200, cache_write=100))
    assert row["PriceModel"] == "claude-sonnet-4-5"
    assert row["CostUsd"] == pytest.approx(SONNET_45)


@pytest.mark.parametrize(("model", "day", "per_million"), [
    ("gpt-4o", "2024-06-01", (5, 15)),                 # before the alias moved to the cheaper snapshot
    ("gpt-4o-2024-11-20", "2024-12-01", (2.5, 10)),     # the family price in force then
    ("gpt-4o-2024-05-13", "2025-01-01", (5, 15)),       # a snapshot priced on its own beats its family
])
def test_price_in_force_on_the_span_date(collector: Collector, model: str, day: str, per_million: tuple) -> None:
    row = call(collector, day, tokens(model, "openai", 1_000_000, 100_000))
    assert row["CostUsd"] == pytest.approx(per_million[0] + per_million[1] / 10)


def test_reported_cost_wins_and_unknown_models_are_listed(collector: Collector) -> None:
    assert call(collector, "2025-11-01", {**tokens("claude-sonnet-4-5", "anthropic", 10, 10),
                                          "gen_ai.usage.cost": 0.5})["CostUsd"] == 0.5
    assert call(collector, "2025-11-01", {**tokens("gpt-4o", "openai", 10, 10),
                                          "llm.cost.total": 0.25})["CostUsd"] == 0.25
    model = f"homegrown-{uuid.uuid4().hex[:8]}"
    assert call(collector, "2025-11-01", tokens(model, "acme", 10, 10))["CostUsd"] is None
    query = queries.render(queries.load("analysis/unpriced_models.sql"), queries.Layout())[0]
    rows = collector.sql(query, since="2025-01-01 00:00:00")
    assert model in {row["Model"] for row in rows}


def test_override_file_reprices_history(new_collector, tmp_path) -> None:
    store = tmp_path / "store"
    first = new_collector(store=store)
    before = call(first, "2025-11-01", tokens("claude-sonnet-4-5", "anthropic", 1_000_000, 0))
    assert before["CostUsd"] == pytest.approx(3.0)
    first.stop()
    override = tmp_path / "prices.toml"
    override.write_text('[[price]]\nmodel = "claude-sonnet-4-5"\nprovider = "anthropic"\n'
                        'effective_from = 2025-09-29\ninput = 2\noutput = 10\n')
    second = new_collector("--prices", str(override), store=store)
    rows = second.sql("SELECT CostUsd FROM llmloop.genai_calls WHERE ServiceName = 'cost'")
    assert [row["CostUsd"] for row in rows] == [pytest.approx(2.0)]
