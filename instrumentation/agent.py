"""The zero-code agent: OTel SDK providers with OTLP exporters, then llmloop's patches.

`initialize()` runs at interpreter start-up in a program launched by `llmloop-instrument` (through the
`sitecustomize` module it puts on `PYTHONPATH`). It honours the standard variables:

- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`, `..._HEADERS`,
  `..._TIMEOUT`, `..._COMPRESSION`, `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` default, or `grpc`).
  With no endpoint set, data goes to the local llmloop collector: `http://127.0.0.1:4318` (gRPC: 4317).
- `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_PROPAGATORS`.
- `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER`: `otlp` (default), `console` or
  `none`. Logs (the GenAI content events) are exported only when the capture mode includes events.
- `OTEL_SDK_DISABLED=true` turns everything off; `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` may name
  `llmloop_anthropic` / `llmloop_openai`.

Nothing here may stop the program: any failure is reported on stderr and the program runs untraced.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

log = logging.getLogger("llmloop.instrumentation")

DEFAULT_HTTP_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_GRPC_ENDPOINT = "http://127.0.0.1:4317"
ENTRY_POINT_NAMES = {"anthropic": "llmloop_anthropic", "openai": "llmloop_openai"}

_initialized = False


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _grpc() -> bool:
    return _env("OTEL_EXPORTER_OTLP_PROTOCOL").lower() == "grpc"


def _endpoint(signal: str) -> str | None:
    """The endpoint to pass to the exporter, or None to let it read the environment."""
    if _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    return DEFAULT_GRPC_ENDPOINT if _grpc() else f"{DEFAULT_HTTP_ENDPOINT}/v1/{signal}"


def _exporter_kind(signal: str) -> str:
    return (_env(f"OTEL_{signal.upper()}_EXPORTER", "otlp").split(",")[0].strip().lower()) or "otlp"


def _span_exporter() -> Any:
    kind = _exporter_kind("traces")
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    endpoint = _endpoint("traces")
    if _grpc():
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()


def _metric_exporter() -> Any:
    kind = _exporter_kind("metrics")
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    endpoint = _endpoint("metrics")
    if _grpc():
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
    return OTLPMetricExporter(endpoint=endpoint) if endpoint else OTLPMetricExporter()


def _log_exporter() -> Any:
    kind = _exporter_kind("logs")
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk._logs.export import ConsoleLogExporter

        return ConsoleLogExporter()
    endpoint = _endpoint("logs")
    if _grpc():
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # type: ignore[assignment]
    return OTLPLogExporter(endpoint=endpoint) if endpoint else OTLPLogExporter()


def configure() -> tuple[Any, Any, Any]:
    """Set the global tracer, meter (and, for content events, logger) providers; return them."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from llmloop.instrumentation.capture import capture_mode_from_env

    resource = Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    span_exporter = _span_exporter()
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)

    metric_exporter = _metric_exporter()
    readers = [PeriodicExportingMetricReader(metric_exporter)] if metric_exporter is not None else []
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)

    logger_provider = None
    if capture_mode_from_env().on_event:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        logger_provider = LoggerProvider(resource=resource)
        log_exporter = _log_exporter()
        if log_exporter is not None:
            logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        set_logger_provider(logger_provider)
    return tracer_provider, meter_provider, logger_provider


def enabled_providers() -> list[str]:
    """Providers to patch: all, minus those `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` names."""
    disabled = {name.strip() for name in _env("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS").split(",") if name.strip()}
    return [p for p, entry in ENTRY_POINT_NAMES.items() if entry not in disabled and p not in disabled]


def initialize() -> bool:
    """Configure OTel and instrument, once per process. True when tracing is on. Never raises."""
    global _initialized
    if _initialized:
        return True
    _initialized = True
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return False
    try:
        from llmloop.instrumentation.instrumentor import instrument

        tracer_provider, meter_provider, logger_provider = configure()
        instrument(enabled_providers(), tracer_provider=tracer_provider, meter_provider=meter_provider,
                   logger_provider=logger_provider)
        return True
    except Exception as error:
        print(f"llmloop-instrument: tracing is off for this program: {error!r}", file=sys.stderr)
        return False
