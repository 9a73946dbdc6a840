"""Fixtures: one in-memory OTel pipeline for the session, llmloop instrumented onto it, the fake provider.

The global tracer provider is never set here (other test files share the process): anthropic clients get
the session provider through their `open_telemetry` option, and llmloop through `instrument()`. Each test
tags its calls with its own config id and reads back only the spans and metric points carrying it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmloop.instrumentation import CaptureMode, instrument, uninstrument
from llmloop.instrumentation.instrumentor import active_telemetry
from tests.fakeprovider import FakeProvider, fake_provider  # noqa: F401 - fixture

CLAUDE = "claude-haiku-4-5"
GPT = "gpt-4o-mini"


@dataclass
class Otel:
    """The session's tracer/meter providers and what they collected."""

    tracer_provider: TracerProvider
    exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    def spans(self, config_id: str | None = None) -> list[ReadableSpan]:
        """Finished GenAI spans (with `gen_ai.operation.name`), those of `config_id` when given."""
        out = []
        for span in self.exporter.get_finished_spans():
            attrs = span.attributes or {}
            if "gen_ai.operation.name" not in attrs:
                continue
            if config_id is None or attrs.get("llmloop.config.id") == config_id:
                out.append(span)
        return out

    def one(self, config_id: str) -> ReadableSpan:
        spans = self.spans(config_id)
        assert len(spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans]
        return spans[0]

    def points(self, metric: str, config_id: str) -> list[Any]:
        """Histogram data points of `metric` labelled with `config_id`."""
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out += [p for p in m.data.data_points if p.attributes.get("llmloop.config.id") == config_id]
        return out

    def instrument(self, **kwargs: Any) -> None:
        """Re-instrument with other settings (e.g. a capture mode)."""
        uninstrument()
        instrument(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs)


@pytest.fixture(scope="package")
def otel() -> Iterator[Otel]:
    """Instrumented for this package's tests only: patches come off before other test folders run."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    state = Otel(tracer_provider, exporter, meter_provider, reader)
    instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, capture=CaptureMode.NO_CONTENT)
    yield state
    uninstrument()


@pytest.fixture
def cid(otel: Otel) -> str:
    """A config id unique to the test (its spans and metric points are found by it)."""
    return f"test-{uuid.uuid4().hex[:12]}@1"


@pytest.fixture
def with_content(otel: Otel) -> Iterator[Otel]:
    """Instrumentation with `SPAN_ONLY` content capture for the test, back to none afterwards."""
    otel.instrument(capture=CaptureMode.SPAN_ONLY)
    yield otel
    otel.instrument(capture=CaptureMode.NO_CONTENT)


@pytest.fixture
def telemetry(otel: Otel) -> Any:
    return active_telemetry()


__all__ = ["CLAUDE", "GPT", "FakeProvider", "Otel"]
