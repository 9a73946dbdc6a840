"""The README's `llmloop sql` examples run as written against a collector holding GenAI calls."""

from __future__ import annotations

import json
import re
import shlex
import time
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import Collector

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = [shlex.split(line)[-1] for line in README.read_text().splitlines()
            if re.match(r"^llmloop sql \"SELECT .*(genai_calls|feedback)", line)]


@pytest.fixture(scope="module")
def with_calls(collector: Collector) -> Collector:
    provider = TracerProvider(resource=Resource.create({"service.name": "readme"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.http_url}/v1/traces")))
    for model, config in (("claude-sonnet-4-5-20250929", "triage@1"), ("gpt-4o-mini", "triage@2"),
                          ("in-house-model", "triage@2")):
        with provider.get_tracer("readme").start_as_current_span(f"chat {model}", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.response.model": model, "llmloop.config.id": config,
                "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100,
                "gen_ai.response.time_to_first_chunk": 0.2}) as span:
            time.sleep(0.01)
        feedback = {"trace_id": f"{span.get_span_context().trace_id:032x}", "thumbs": "down", "config_id": config}
        request = urllib.request.Request(f"{collector.http_url}/api/v1/feedback", json.dumps(feedback).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
    provider.shutdown()
    collector.wait_rows("SELECT 1 FROM llmloop.genai_calls WHERE ServiceName = 'readme'", 3)
    return collector


def test_readme_has_the_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("query", EXAMPLES)
def test_readme_example_runs(with_calls: Collector, query: str) -> None:
    assert with_calls.sql(query)
