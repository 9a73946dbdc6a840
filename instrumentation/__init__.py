"""Runs inside the user's app: provider patches, config context, router. Imports semconv only.

Public surface: `instrument` / `uninstrument` (patch the anthropic and openai SDKs), `use_config`
(tag the model calls of a scope with a config id), `record_retrieval` (document ids on the current
or next GenAI span), `LlmloopSpanProcessor` (config tagging for any GenAI span, incl. downstream services).
"""

from llmloop.instrumentation.capture import CaptureMode
from llmloop.instrumentation.config import ConfigRef, current_config, record_retrieval, use_config
from llmloop.instrumentation.instrumentor import (
    AnthropicInstrumentor,
    OpenAIInstrumentor,
    instrument,
    uninstrument,
)
from llmloop.instrumentation.processor import LlmloopSpanProcessor

__all__ = [
    "AnthropicInstrumentor",
    "CaptureMode",
    "ConfigRef",
    "LlmloopSpanProcessor",
    "OpenAIInstrumentor",
    "current_config",
    "instrument",
    "record_retrieval",
    "uninstrument",
    "use_config",
]
