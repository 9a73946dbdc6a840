"""Runs inside the user's app: provider patches, config context, router. Imports semconv only.

Public surface: `instrument` / `uninstrument` (patch the anthropic and openai SDKs), `use_config`
(tag the model calls of a scope with a config id), `record_retrieval` (document ids on the current
or next GenAI span), `LlmloopSpanProcessor` (config tagging for any GenAI span, incl. downstream
services), `router` (which config serves a request key, kept current from the collector's rollout
state) and `feedback` (user feedback on a model call, sent to the collector).
"""

from llmloop.instrumentation.capture import CaptureMode
from llmloop.instrumentation.config import ConfigRef, current_config, record_retrieval, use_config
from llmloop.instrumentation.feedback import feedback
from llmloop.instrumentation.instrumentor import (
    AnthropicInstrumentor,
    OpenAIInstrumentor,
    instrument,
    uninstrument,
)
from llmloop.instrumentation.processor import LlmloopSpanProcessor
from llmloop.instrumentation.router import Router, router

__all__ = [
    "AnthropicInstrumentor",
    "CaptureMode",
    "ConfigRef",
    "LlmloopSpanProcessor",
    "OpenAIInstrumentor",
    "Router",
    "current_config",
    "feedback",
    "instrument",
    "record_retrieval",
    "router",
    "uninstrument",
    "use_config",
]
