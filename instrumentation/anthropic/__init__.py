"""anthropic: the patched methods (create/stream, sync and async, plus native tracing's end hook)."""

from llmloop.instrumentation.anthropic import patch as _patch
from llmloop.instrumentation.anthropic.package import _instruments
from llmloop.instrumentation.patching import Patch

SDK = "anthropic"
"""Top-level module of the SDK these patches target."""

_MESSAGES = "anthropic.resources.messages"

PATCHES: tuple[Patch, ...] = (
    Patch(_MESSAGES, "Messages.create", _patch.messages_create),
    Patch(_MESSAGES, "AsyncMessages.create", _patch.async_messages_create),
    Patch(_MESSAGES, "Messages.stream", _patch.messages_stream),
    Patch(_MESSAGES, "AsyncMessages.stream", _patch.async_messages_stream),
    Patch("anthropic._base_client", "finish_api_call_span", _patch.finish_api_call_span),
)
"""Installed in this order by `instrument()`, removed by `uninstrument()`; a target missing in the installed
SDK (e.g. the native hook before 1.14) is skipped."""

__all__ = ["PATCHES", "SDK", "_instruments"]
