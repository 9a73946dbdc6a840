"""llmloop's span processor: tags GenAI spans with the config of their context, and adopts native spans.

Added to the tracer provider by `instrument()` (and by the agent entrypoint). On every span start it:

1. adopts the span when an llmloop patch is waiting for the SDK's native span of the same call
   (anthropic >= 1.14 traces natively; see `instrumentation.anthropic`), so the native span carries
   llmloop's attributes and no second span is made;
2. otherwise, for any other GenAI span (another library's, or a native span started outside an llmloop
   patch), sets `llmloop.config.id` / rollout from the span's parent context: `use_config` in this
   process, or W3C baggage received from an upstream service. This is how downstream processes tag
   their spans with the config that the request started under.

Spans that are not GenAI spans cost two dictionary lookups. It never raises.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from llmloop.instrumentation.config import config_attributes, current_config, take_pending_retrieval
from llmloop.semconv import attributes as A

log = logging.getLogger("llmloop.instrumentation")

OWN_SCOPE = "llmloop.instrumentation"
"""Scope of llmloop's own spans, which carry their config attributes already."""

pending_adoption: contextvars.ContextVar[Any] = contextvars.ContextVar("llmloop_pending_adoption", default=None)
"""The invocation of the SDK call in progress that waits for the SDK's native span (set by patches)."""


class LlmloopSpanProcessor(SpanProcessor):
    """Tags GenAI spans with llmloop's config attributes; adopts native SDK spans for llmloop patches."""

    def __init__(self, native_scopes: tuple[str, ...] = (A.ANTHROPIC_SCOPE,)) -> None:
        self.native_scopes = native_scopes
        self.enabled = True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self.enabled:
            return
        try:
            inv = pending_adoption.get()
            attrs = span.attributes
            scope = span.instrumentation_scope
            if inv is not None and inv.span is None and (
                    (scope is not None and scope.name.startswith(self.native_scopes))
                    or (inv.adopt_any and attrs and any(key in attrs for key in A.GENAI_MARKERS))):
                inv.adopt(span)
                return
            if not attrs or A.LLMLOOP_CONFIG_ID in attrs or (scope is not None and scope.name == OWN_SCOPE):
                return
            if A.GEN_AI_OPERATION_NAME in attrs or A.GEN_AI_PROVIDER_NAME in attrs or A.GEN_AI_SYSTEM in attrs:
                tags: dict[str, Any] = config_attributes(current_config(parent_context))
                retrieval = take_pending_retrieval()
                if retrieval:
                    tags[A.LLMLOOP_RETRIEVAL_DOCUMENT_IDS] = retrieval
                if tags:
                    span.set_attributes(tags)
        except Exception:
            log.debug("llmloop: span processor failed on start", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        self.enabled = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
