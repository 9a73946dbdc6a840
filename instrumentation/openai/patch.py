"""One factory per patched openai method: each returns the wrapt wrapper for a `Telemetry`.

Streamed chat calls get token usage without changing what the app receives: when the caller did not set
`stream_options`, llmloop asks for `{"include_usage": true}` and hides the extra usage-only chunk (and
the `usage: null` the other chunks then carry) from the app. `LLMLOOP_OPENAI_STREAM_USAGE=off` turns
this off; it is never done for raw/streaming-response calls (the app may read the bytes) nor for Azure
API versions older than 2024-09-01, which reject the parameter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from llmloop.instrumentation.openai import extractors
from llmloop.instrumentation.patching import Patch, Result, Wrapper, sdk_types, traced_acall, traced_call
from llmloop.instrumentation.streams import ChunkHandler, async_result, sync_result

ENV_STREAM_USAGE = "LLMLOOP_OPENAI_STREAM_USAGE"
AZURE_STREAM_OPTIONS_SINCE = "2024-09-01"
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


def _stream_usage_enabled() -> bool:
    return os.environ.get(ENV_STREAM_USAGE, "auto").strip().lower() not in ("off", "false", "0", "no")


def _raw_mode(kwargs: dict[str, Any]) -> bool:
    headers = kwargs.get("extra_headers")
    return isinstance(headers, dict) and RAW_RESPONSE_HEADER in headers


def _may_inject(client: Any, kwargs: dict[str, Any]) -> bool:
    """Whether to ask for streamed usage on this call (the caller left `stream_options` unset)."""
    if kwargs.get("stream") is not True or _raw_mode(kwargs):
        return False
    if "stream_options" in kwargs and (kwargs["stream_options"] is None or extractors.given(kwargs["stream_options"])):
        return False
    version = getattr(client, "_api_version", None)
    return not (isinstance(version, str) and version[:10] < AZURE_STREAM_OPTIONS_SINCE)


def _chat(telemetry: Any, patch: Patch, is_async: bool) -> Wrapper:
    streams, astreams, raw, araw = sdk_types("openai")
    inject_usage = _stream_usage_enabled()
    handlers = (extractors.ChatChunkHandler, lambda inv: extractors.ChatChunkHandler(inv, hide_usage=True))
    plain = (sync_result(streams, raw, handlers[0], extractors.record_chat) if not is_async else
             async_result(astreams, raw, araw, handlers[0], extractors.record_chat))
    hiding = (sync_result(streams, raw, handlers[1], extractors.record_chat) if not is_async else
              async_result(astreams, raw, araw, handlers[1], extractors.record_chat))
    results = (Result(plain, extractors.error_type), Result(hiding, extractors.error_type))

    def prepare(instance: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any], Result]:
        client = getattr(instance, "_client", None)
        if telemetry.active and inject_usage and _may_inject(client, kwargs):
            return client, {**kwargs, "stream_options": {"include_usage": True}}, results[1]
        return client, kwargs, results[0]

    if is_async:
        async def async_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                                kwargs: dict[str, Any]) -> Any:
            client, call_kwargs, result = prepare(instance, kwargs)
            return await traced_acall(telemetry, wrapped, args, call_kwargs,
                                      lambda: extractors.chat_request(client, kwargs), result, patch=patch)

        return async_wrapper

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        client, call_kwargs, result = prepare(instance, kwargs)
        return traced_call(telemetry, wrapped, args, call_kwargs, lambda: extractors.chat_request(client, kwargs),
                           result, patch=patch)

    return wrapper


def chat_create(telemetry: Any, patch: Patch) -> Wrapper:
    return _chat(telemetry, patch, is_async=False)


def async_chat_create(telemetry: Any, patch: Patch) -> Wrapper:
    return _chat(telemetry, patch, is_async=True)


def _simple(telemetry: Any, patch: Patch, is_async: bool, extract: Callable[[Any, dict[str, Any]], Any],
            handler: Any, record: Callable[[Any, Any], None]) -> Wrapper:
    streams, astreams, raw, araw = sdk_types("openai")
    handle = (async_result(astreams, raw, araw, handler, record) if is_async
              else sync_result(streams, raw, handler, record))
    result = Result(handle, extractors.error_type)

    if is_async:
        async def async_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                                kwargs: dict[str, Any]) -> Any:
            client = getattr(instance, "_client", None)
            return await traced_acall(telemetry, wrapped, args, kwargs, lambda: extract(client, kwargs), result,
                                      patch=patch)

        return async_wrapper

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        client = getattr(instance, "_client", None)
        return traced_call(telemetry, wrapped, args, kwargs, lambda: extract(client, kwargs), result, patch=patch)

    return wrapper


def responses_create(telemetry: Any, patch: Patch) -> Wrapper:
    return _simple(telemetry, patch, False, extractors.responses_request, extractors.ResponseEventHandler,
                   extractors.record_response)


def async_responses_create(telemetry: Any, patch: Patch) -> Wrapper:
    return _simple(telemetry, patch, True, extractors.responses_request, extractors.ResponseEventHandler,
                   extractors.record_response)


def embeddings_create(telemetry: Any, patch: Patch) -> Wrapper:
    return _simple(telemetry, patch, False, extractors.embeddings_request, ChunkHandler,
                   extractors.record_embeddings)


def async_embeddings_create(telemetry: Any, patch: Patch) -> Wrapper:
    return _simple(telemetry, patch, True, extractors.embeddings_request, ChunkHandler,
                   extractors.record_embeddings)
