"""The handler behind every patch: tracer, metric instruments, capture switch, and call start/record.

One `Telemetry` exists per `instrument()`; patches get it from their factory and read its settings,
which are fixed when it is built ("decide once, not per call").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics, trace

from llmloop.instrumentation.capture import CaptureMode, capture_mode_from_env, max_bytes_from_env
from llmloop.instrumentation.invocation import Invocation, Request
from llmloop.instrumentation.metrics import metrics_for
from llmloop.semconv import attributes as A

log = logging.getLogger("llmloop.instrumentation")

SCOPE = "llmloop.instrumentation"
"""Instrumentation scope of llmloop's own spans and metrics."""

EVENT_NAME = "gen_ai.client.inference.operation.details"
"""The GenAI event carrying a call's content when the capture mode includes events."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("llmloop")
    except Exception:
        return "0"


def qualified_name(error: BaseException) -> str:
    """Fully qualified exception type, the fallback `error.type`."""
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"


class Telemetry:
    """Tracer, instruments and settings shared by all patches of one `instrument()` call."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        logger_provider: Any = None,
        capture: CaptureMode | None = None,
        max_content_bytes: int | None = None,
    ) -> None:
        version = _version()
        self.tracer = trace.get_tracer(SCOPE, version, tracer_provider=tracer_provider)
        self.metrics = metrics_for(metrics.get_meter(SCOPE, version, meter_provider=meter_provider))
        self.capture = capture if capture is not None else capture_mode_from_env()
        self.max_content_bytes = max_content_bytes or max_bytes_from_env()
        self.event_logger = self._event_logger(logger_provider) if self.capture.on_event else None
        self.active = True
        """False after `uninstrument()`: wrappers the SDK cached (with_raw_response) pass calls through."""

    @staticmethod
    def _event_logger(logger_provider: Any) -> Any:
        try:
            from opentelemetry import _logs

            return _logs.get_logger(SCOPE, _version(), logger_provider=logger_provider)
        except Exception:
            log.debug("llmloop: no OTel logs API, content events disabled", exc_info=True)
            return None

    # --- calls ---------------------------------------------------------------------------------------

    def invocation(self, extract: Callable[[], Request]) -> Invocation | None:
        """A new invocation from the provider's request extractor, or None if extraction failed."""
        try:
            return Invocation(self, extract())
        except Exception:
            log.debug("llmloop: could not read the request; the call is not traced", exc_info=True)
            return None

    def start(self, extract: Callable[[], Request]) -> Invocation | None:
        """Own mode: an invocation with its span started, or None (the call then runs untraced)."""
        inv = self.invocation(extract)
        if inv is None:
            return None
        try:
            inv.start_span()
        except Exception:
            log.debug("llmloop: could not start the span", exc_info=True)
            return None
        return inv

    @staticmethod
    def error_type(error: BaseException) -> str:
        return qualified_name(error)

    # --- metrics and events --------------------------------------------------------------------------

    def record(self, inv: Invocation) -> None:
        """Queue the call's metrics (see `metrics`) and emit its content event, once it has ended."""
        req = inv.request
        attrs: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: req.operation, A.GEN_AI_PROVIDER_NAME: req.provider}
        if req.model:
            attrs[A.GEN_AI_REQUEST_MODEL] = req.model
        if inv.response_model:
            attrs[A.GEN_AI_RESPONSE_MODEL] = inv.response_model
        server = req.attributes.get(A.SERVER_ADDRESS)
        if server:
            attrs[A.SERVER_ADDRESS] = server
            port = req.attributes.get(A.SERVER_PORT)
            if port:
                attrs[A.SERVER_PORT] = port
        if inv.error_type:
            attrs[A.ERROR_TYPE] = inv.error_type
        config = inv.config
        if config is not None:
            attrs[A.LLMLOOP_CONFIG_ID] = config.id
            if config.arm:
                attrs[A.LLMLOOP_ROLLOUT_ARM] = config.arm
        ttfc = (inv.first_chunk_ns - inv.start_ns) / 1e9 if inv.first_chunk_ns is not None and req.stream else None
        self.metrics.add(((time.perf_counter_ns() - inv.start_ns) / 1e9, ttfc, inv.input_tokens, inv.output_tokens,
                          attrs))
        if self.event_logger is not None:
            self._emit_event(inv)

    def _emit_event(self, inv: Invocation) -> None:
        try:
            from opentelemetry._logs import SeverityNumber

            ctx = trace.set_span_in_context(inv.span) if inv.span is not None else None
            self.event_logger.emit(event_name=EVENT_NAME, attributes=inv.event_payload(), context=ctx,
                                   severity_number=SeverityNumber.DEBUG)
        except Exception:
            log.debug("llmloop: could not emit the content event", exc_info=True)
