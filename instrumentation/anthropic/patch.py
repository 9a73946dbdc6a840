"""One factory per patched anthropic method: each returns the wrapt wrapper for a `Telemetry`.

With native tracing (a client whose `_tracer` is set) the call adopts the SDK's span; otherwise llmloop
makes its own. Either way the SDK's return value, exceptions and stream objects reach the app as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from llmloop.instrumentation.anthropic import extractors
from llmloop.instrumentation.anthropic.wrappers import (
    AsyncMessageStreamManagerProxy,
    MessageStreamManagerProxy,
    before_native_end,
    install_tee,
    is_native,
)
from llmloop.instrumentation.patching import Patch, Result, Wrapper, sdk_types, traced_acall, traced_call
from llmloop.instrumentation.processor import pending_adoption
from llmloop.instrumentation.streams import async_result, sync_result

log = logging.getLogger("llmloop.instrumentation")


def messages_create(telemetry: Any, patch: Patch) -> Wrapper:
    streams, _, raw, _ = sdk_types("anthropic")
    result = Result(sync_result(streams, raw, extractors.MessageEventHandler, extractors.record_message),
                    extractors.error_type)

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        client = getattr(instance, "_client", None)
        return traced_call(telemetry, wrapped, args, kwargs, lambda: extractors.request(client, kwargs), result,
                           adopt=is_native(client), patch=patch)

    return wrapper


def async_messages_create(telemetry: Any, patch: Patch) -> Wrapper:
    _, astreams, raw, araw = sdk_types("anthropic")
    result = Result(async_result(astreams, raw, araw, extractors.MessageEventHandler, extractors.record_message),
                    extractors.error_type)

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        client = getattr(instance, "_client", None)
        return await traced_acall(telemetry, wrapped, args, kwargs, lambda: extractors.request(client, kwargs),
                                  result, adopt=is_native(client), patch=patch)

    return wrapper


def messages_stream(telemetry: Any, patch: Patch) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if not telemetry.active:
            return manager
        try:
            return MessageStreamManagerProxy(manager, telemetry, patch, getattr(instance, "_client", None), kwargs)
        except Exception:
            log.debug("llmloop: could not wrap the stream manager", exc_info=True)
            return manager

    return wrapper


def async_messages_stream(telemetry: Any, patch: Patch) -> Wrapper:
    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if not telemetry.active:
            return manager
        try:
            return AsyncMessageStreamManagerProxy(manager, telemetry, patch, getattr(instance, "_client", None),
                                                  kwargs)
        except Exception:
            log.debug("llmloop: could not wrap the stream manager", exc_info=True)
            return manager

    return wrapper


def finish_api_call_span(telemetry: Any, patch: Patch) -> Wrapper:
    """Native tracing's hook: the SDK calls it with the call's span and result just before ending the span."""
    streams, astreams, raw, araw = sdk_types("anthropic")
    stream_types, raw_types = streams + astreams, raw + araw

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        inv = pending_adoption.get()
        if inv is None or inv.done or not telemetry.active or inv.foreign:
            return wrapped(*args, **kwargs)
        streamed = False
        try:
            span = args[1] if len(args) > 1 else kwargs.get("span")
            call = args[2] if len(args) > 2 else kwargs.get("result")
            streamed = before_native_end(inv, span, call, stream_types, raw_types)
        except Exception:
            log.debug("llmloop: could not record the native call", exc_info=True)
        value = wrapped(*args, **kwargs)
        if streamed:
            try:
                install_tee(inv, getattr(call, "response", None))
            except Exception:
                log.debug("llmloop: could not observe the native stream", exc_info=True)
        return value

    return wrapper
