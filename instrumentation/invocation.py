"""The careful core: one `Invocation` per model call owns its span, attributes and metrics.

Providers never touch spans. Their extractors fill a `Request` before the call and set fields on the
`Invocation` after it (usage, finish reasons, tool calls, ...); the core turns those fields into
attributes once, at `finish()`, which runs at most once whatever the exit path.

Two span modes:

- **own**: llmloop starts a CLIENT span named ``{operation} {model}``, current while the SDK's HTTP call
  runs, and ends it in `finish()`/`fail()`.
- **adopted**: the SDK traces natively (anthropic >= 1.14). The native span stays the call's one GenAI
  span; llmloop sets its own attributes on it (`adopt()`), and `finish()` adds the response-side ones
  while the span is still open. The SDK ends the span.

Every public method is safe: failures are logged at debug level and never reach the application.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmloop.instrumentation.capture import bounded_json, dumps
from llmloop.instrumentation.config import config_attributes, current_config, take_pending_retrieval
from llmloop.semconv import attributes as A
from llmloop.semconv.fingerprint import fingerprint

log = logging.getLogger("llmloop.instrumentation")


@dataclass
class Request:
    """What a provider extractor reads off a call's arguments before the call."""

    provider: str
    operation: str
    model: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    """Request-side span attributes (gen_ai.request.*, server.*), None values already dropped."""
    system: list[str] = field(default_factory=list)
    """System-instruction text parts, for the fingerprint."""
    params: dict[str, Any] = field(default_factory=dict)
    """Generation parameters that define the config, for the fingerprint."""
    tools: list[Any] | None = None
    """Tool definitions, for the fingerprint."""
    stream: bool = False
    content: Callable[[], dict[str, Any]] | None = None
    """Builds the opt-in content attributes (input messages, system instructions, tool definitions)."""
    native_keys: frozenset[str] = frozenset()
    """Request attributes the SDK's native span already has (skipped when adopting)."""


class Invocation:
    """One model call: its span (own or adopted), the response fields providers fill, and its end."""

    __slots__ = (
        "_metric_attrs", "adopt_any", "adopted", "cache_read_tokens", "cache_write_tokens", "config",
        "deferred", "done", "error_type", "extra", "finish_reasons", "first_chunk_ns", "foreign",
        "input_tokens", "output_messages", "output_tokens", "owns_span", "reasoning_tokens", "request",
        "response_id", "response_model", "span", "start_ns", "telemetry", "tool_call_ids", "tool_call_names",
        "truncated",
    )

    def __init__(self, telemetry: Any, request: Request) -> None:
        self.telemetry = telemetry
        self.request = request
        self.start_ns = time.perf_counter_ns()
        self.span: trace.Span | None = None
        self.owns_span = False
        self.adopted = False
        self.deferred = False
        """Set when something else (the SDK's stream observer) will call `finish()`."""
        self.done = False
        self.foreign = False
        """Set when the span is another instrumentation library's: llmloop then records no metrics."""
        self.adopt_any = False
        """Adopt the first GenAI span started during the call, whatever its scope (another library's)."""
        self.config = current_config()
        self.first_chunk_ns: int | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.tool_call_ids: list[str] | None = None
        self.tool_call_names: list[str] | None = None
        self.output_messages: list[dict[str, Any]] | None = None
        self.error_type: str | None = None
        self.extra: dict[str, Any] = {}
        """Provider-specific response attributes (e.g. `openai.response.service_tier`)."""
        self.truncated = False
        self._metric_attrs: dict[str, Any] | None = None

    # --- start -----------------------------------------------------------------------------------------

    def _llmloop_attributes(self) -> dict[str, Any]:
        req = self.request
        attrs: dict[str, Any] = config_attributes(self.config)
        try:
            attrs[A.LLMLOOP_CONFIG_FINGERPRINT] = fingerprint(
                req.provider, req.model, req.system, req.params, req.tools)
        except Exception:
            log.debug("llmloop: could not fingerprint the request", exc_info=True)
        retrieval = take_pending_retrieval()
        if retrieval:
            attrs[A.LLMLOOP_RETRIEVAL_DOCUMENT_IDS] = retrieval
        if req.content is not None and self.telemetry.capture.on_span:
            attrs.update(self._content_attributes(req.content()))
        return attrs

    def _content_attributes(self, content: dict[str, Any]) -> dict[str, str]:
        out: dict[str, str] = {}
        budget = self.telemetry.max_content_bytes
        for key, value in content.items():
            if value is None:
                continue
            text, cut = bounded_json(value, budget)
            out[key] = text
            self.truncated |= cut
        if self.truncated:
            out[A.LLMLOOP_CONTENT_TRUNCATED] = True  # type: ignore[assignment]
        return out

    def start_span(self) -> None:
        """Own mode: start llmloop's CLIENT span with every request attribute (not yet current)."""
        req = self.request
        attrs = {A.GEN_AI_OPERATION_NAME: req.operation, A.GEN_AI_PROVIDER_NAME: req.provider}
        if req.model:
            attrs[A.GEN_AI_REQUEST_MODEL] = req.model
        attrs.update(req.attributes)
        attrs.update(self._llmloop_attributes())
        name = f"{req.operation} {req.model}" if req.model else req.operation
        self.span = self.telemetry.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
        self.owns_span = True

    def adopt(self, span: trace.Span) -> None:
        """Adopted mode: put llmloop's attributes on the SDK's own span, which has just started."""
        if self.span is not None:
            return
        self.span = span
        self.adopted = True
        try:
            if not span.is_recording():
                return
            req = self.request
            attrs = {k: v for k, v in req.attributes.items() if k not in req.native_keys}
            attrs.update(self._llmloop_attributes())
            span.set_attributes(attrs)
        except Exception:
            log.debug("llmloop: could not enrich the native span", exc_info=True)

    def activate(self) -> object | None:
        """Make the own span current (for the SDK's HTTP call); returns the token for `deactivate`."""
        if self.span is None or not self.owns_span:
            return None
        return otel_context.attach(trace.set_span_in_context(self.span))

    @staticmethod
    def deactivate(token: object | None) -> None:
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception:
                log.debug("llmloop: could not detach context", exc_info=True)

    # --- streaming -----------------------------------------------------------------------------------

    def mark_first_chunk(self) -> None:
        """Record the time of the first chunk carrying output content (idempotent)."""
        if self.first_chunk_ns is None:
            self.first_chunk_ns = time.perf_counter_ns()

    def add_tool_call(self, call_id: object, name: object) -> None:
        if self.tool_call_ids is None:
            self.tool_call_ids, self.tool_call_names = [], []
        self.tool_call_ids.append(str(call_id) if call_id is not None else "")
        self.tool_call_names.append(str(name) if name is not None else "")  # type: ignore[union-attr]

    # --- end -----------------------------------------------------------------------------------------

    def _response_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        adopted = self.adopted
        if not adopted:
            for key, value in (
                (A.GEN_AI_RESPONSE_ID, self.response_id),
                (A.GEN_AI_RESPONSE_MODEL, self.response_model),
                (A.GEN_AI_USAGE_INPUT_TOKENS, self.input_tokens),
                (A.GEN_AI_USAGE_OUTPUT_TOKENS, self.output_tokens),
                (A.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, self.cache_read_tokens),
                (A.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, self.cache_write_tokens),
                (A.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, self.reasoning_tokens),
            ):
                if value is not None:
                    attrs[key] = value
            if self.first_chunk_ns is not None:
                attrs[A.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (self.first_chunk_ns - self.start_ns) / 1e9
        if self.finish_reasons:
            attrs[A.GEN_AI_RESPONSE_FINISH_REASONS] = self.finish_reasons
        if self.extra:
            attrs.update(self.extra)
        if self.tool_call_ids:
            attrs[A.LLMLOOP_TOOL_CALL_IDS] = self.tool_call_ids
            attrs[A.LLMLOOP_TOOL_CALL_NAMES] = self.tool_call_names
        if self.output_messages is not None and self.telemetry.capture.on_span:
            attrs.update(self._content_attributes({A.GEN_AI_OUTPUT_MESSAGES: self.output_messages}))
        return attrs

    def finish(self) -> None:
        """End the call successfully (or as far as it got): attributes, span end, metrics. Runs once."""
        if self.done:
            return
        self.done = True
        self._end(None)

    def fail(self, error: BaseException, error_type: str | None = None) -> None:
        """End the call with `error`. A non-`Exception` (cancellation, exit) ends it without error status."""
        if self.done:
            return
        self.done = True
        if isinstance(error, Exception):
            self.error_type = error_type or self.telemetry.error_type(error)
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        span = self.span
        try:
            if span is not None and span.is_recording():
                attrs = self._response_attributes()
                if self.error_type is not None and self.owns_span:
                    attrs[A.ERROR_TYPE] = self.error_type
                if attrs:
                    span.set_attributes(attrs)
                if self.error_type is not None and self.owns_span:
                    span.set_status(Status(StatusCode.ERROR, str(error)[:256] if error else None))
        except Exception:
            log.debug("llmloop: could not record the response on the span", exc_info=True)
        finally:
            if span is not None and self.owns_span:
                try:
                    span.end()
                except Exception:
                    log.debug("llmloop: could not end the span", exc_info=True)
        if self.foreign:
            return
        try:
            self.telemetry.record(self)
        except Exception:
            log.debug("llmloop: could not record metrics", exc_info=True)

    def event_payload(self) -> dict[str, Any]:
        """Attributes of the `gen_ai.client.inference.operation.details` event (content included)."""
        req = self.request
        payload: dict[str, Any] = {A.GEN_AI_OPERATION_NAME: req.operation, A.GEN_AI_PROVIDER_NAME: req.provider}
        if req.model:
            payload[A.GEN_AI_REQUEST_MODEL] = req.model
        payload.update(config_attributes(self.config))
        if req.content is not None:
            for key, value in req.content().items():
                if value is not None:
                    payload[key] = bounded_json(value, self.telemetry.max_content_bytes)[0]
        if self.output_messages is not None:
            payload[A.GEN_AI_OUTPUT_MESSAGES] = bounded_json(self.output_messages,
                                                            self.telemetry.max_content_bytes)[0]
        for key, value in ((A.GEN_AI_RESPONSE_ID, self.response_id), (A.GEN_AI_RESPONSE_MODEL, self.response_model),
                           (A.GEN_AI_USAGE_INPUT_TOKENS, self.input_tokens),
                           (A.GEN_AI_USAGE_OUTPUT_TOKENS, self.output_tokens), (A.ERROR_TYPE, self.error_type)):
            if value is not None:
                payload[key] = value
        if self.finish_reasons:
            payload[A.GEN_AI_RESPONSE_FINISH_REASONS] = self.finish_reasons
        return payload


__all__ = ["Invocation", "Request", "dumps"]
