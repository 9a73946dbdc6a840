"""Anthropic-specific wrappers: the `messages.stream()` managers and the native-tracing stream tee.

Native tracing (anthropic >= 1.14) ends its span when the response body ends: the SDK's `Stream` reports
each event and the end of reading to an observer it finds on the body (`response.stream.stream_observer`,
a `FirstEnd`). llmloop puts a `FirstEnd` of its own there that forwards everything to the SDK's: it sees
each event first and finishes the invocation just before the SDK ends its span, on every path the SDK
handles (read to the end, `close()`, failure, body garbage-collected). The app keeps the SDK's own objects.
"""

from __future__ import annotations

import logging
from typing import Any

import wrapt

from llmloop.instrumentation.anthropic import extractors
from llmloop.instrumentation.invocation import Invocation
from llmloop.instrumentation.patching import Patch, Result, traced_acall, traced_call
from llmloop.instrumentation.streams import AsyncStream, ChunkHandler, SyncStream, body_read, end_invocation

log = logging.getLogger("llmloop.instrumentation")

_tee_classes: Any = None


def native_tee_classes() -> tuple[Any, Any] | None:
    """(end-only, per-event) `FirstEnd` subclasses for this SDK, or None when it has no such observer."""
    global _tee_classes
    if _tee_classes is None:
        try:
            from anthropic._tracing import FirstEnd
        except Exception:
            _tee_classes = False
            return None

        class NativeStreamEnd(FirstEnd):  # type: ignore[misc, valid-type]
            """Ends llmloop's invocation just before the SDK ends its span, from the SDK's own accumulation.

            Per event it is the SDK's `FirstEnd` (no added work): at the end it reads the Message that the
            SDK's recorder accumulated (or the stream helper's snapshot it shares) and the time to first
            chunk the SDK put on the span.
            """

            def __init__(self, native: Any, inv: Invocation, handler: ChunkHandler | None) -> None:
                FirstEnd.__init__(self, native.inner)
                self._ended = bool(getattr(native, "_ended", False))
                self.llmloop_inv = inv
                self.llmloop_handler = handler

            def end(self, how: Any, error: BaseException | None = None) -> None:
                if not self._ended:
                    inv = self.llmloop_inv
                    if self.llmloop_handler is None:
                        try:
                            record_native_snapshot(inv, self.inner)
                        except Exception:
                            log.debug("llmloop: could not read the native stream's message", exc_info=True)
                    end_invocation(inv, self.llmloop_handler, error if how == "failed" else None)
                FirstEnd.end(self, how, error)

        class NativeStreamTee(NativeStreamEnd):
            """Also feeds llmloop's handler each event (content capture needs the text deltas)."""

            def item(self, item: object) -> None:
                handler = self.llmloop_handler
                if handler is not None and not self._ended:
                    try:
                        handler.chunk(item)
                    except Exception:
                        log.debug("llmloop: stream handler failed", exc_info=True)
                        self.llmloop_handler = None
                FirstEnd.item(self, item)

        _tee_classes = (NativeStreamEnd, NativeStreamTee)
    return _tee_classes or None


def record_native_snapshot(inv: Invocation, recorder: Any) -> None:
    """What the SDK's stream recorder accumulated (Message so far, TTFC) into the invocation."""
    shared = getattr(recorder, "_shared_snapshot", None)
    message = shared() if callable(shared) else getattr(recorder, "_snapshot", None)
    if message is not None:
        extractors.record_message(inv, message)
        if not getattr(recorder, "_has_message_delta", False):
            # Before message_delta the stop reason and output tokens are message_start's placeholders.
            inv.output_tokens = inv.finish_reasons = None
    ttfc = (getattr(inv.span, "attributes", None) or {}).get("gen_ai.response.time_to_first_chunk")
    if isinstance(ttfc, float):
        inv.first_chunk_ns = inv.start_ns + int(ttfc * 1e9)


def install_tee(inv: Invocation, response: Any) -> bool:
    """Put llmloop's observer in place of the SDK's on `response`'s body; True when it is in place."""
    body = getattr(response, "stream", None)
    native = getattr(body, "stream_observer", None)
    classes = native_tee_classes()
    if classes is None or native is None or getattr(native, "_ended", True) or not hasattr(native, "inner"):
        return False
    if inv.telemetry.capture.any:
        body.stream_observer = classes[1](native, inv, extractors.MessageEventHandler(inv))
    else:
        body.stream_observer = classes[0](native, inv, None)
    inv.deferred = True
    return True


def is_native(client: Any) -> bool:
    """Whether this client traces natively (its SDK has `_tracer` and tracing is on)."""
    try:
        return getattr(client, "_tracer", None) is not None
    except Exception:
        return False


def before_native_end(inv: Invocation, span: Any, result: Any, stream_types: tuple[type, ...],
                      raw_types: tuple[type, ...]) -> bool:
    """Called by the SDK as it finishes the call's native span; True when the response is a stream body.

    A complete response is recorded now, while the span is open; a stream is recorded by the tee.
    """
    if inv.span is None:
        inv.adopt(span)
    elif inv.span is not span:
        return False
    if getattr(result, "error", None) is not None:
        return False
    data = getattr(result, "data", None)
    if isinstance(data, stream_types):
        return True
    if isinstance(data, raw_types):
        if not body_read(data):
            # A streamed body goes through the tee. A JSON body the app will read itself (with_streaming_response)
            # ends the native span inside that read, before llmloop can see it: the app's `parse()` records it
            # for the metrics (`RawResponse`), the span keeps what native tracing put there.
            return inv.request.stream
        # The body is in memory; an async response's `parse()` is a coroutine, so decode the JSON directly.
        data = data.http_response.json()
    extractors.record_message(inv, data)
    inv.finish()
    return False


class MessageStreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """Wraps `messages.stream()`'s manager: the request (and the trace) starts at `__enter__`."""

    def __init__(self, wrapped: Any, telemetry: Any, patch: Patch, client: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_telemetry = telemetry
        self._self_patch = patch
        self._self_client = client
        self._self_kwargs = kwargs

    def _self_handle(self, inv: Invocation, message_stream: Any) -> Any:
        raw = getattr(message_stream, "_raw_stream", None)
        if raw is not None and not isinstance(raw, SyncStream):
            message_stream._raw_stream = SyncStream(raw, inv, extractors.MessageEventHandler(inv))
        else:
            inv.finish()
        return message_stream

    def __enter__(self) -> Any:
        client, kwargs = self._self_client, self._self_kwargs
        return traced_call(
            self._self_telemetry, self.__wrapped__.__enter__, (), {},
            lambda: extractors.request(client, kwargs, stream=True),
            Result(self._self_handle, extractors.error_type), adopt=is_native(client), patch=self._self_patch)

    def __exit__(self, *exc: Any) -> Any:
        return self.__wrapped__.__exit__(*exc)


class AsyncMessageStreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """Wraps `AsyncMessages.stream()`'s manager; the request starts at `__aenter__`."""

    def __init__(self, wrapped: Any, telemetry: Any, patch: Patch, client: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_telemetry = telemetry
        self._self_patch = patch
        self._self_client = client
        self._self_kwargs = kwargs

    def _self_handle(self, inv: Invocation, message_stream: Any) -> Any:
        raw = getattr(message_stream, "_raw_stream", None)
        if raw is not None and not isinstance(raw, AsyncStream):
            message_stream._raw_stream = AsyncStream(raw, inv, extractors.MessageEventHandler(inv))
        else:
            inv.finish()
        return message_stream

    async def __aenter__(self) -> Any:
        client, kwargs = self._self_client, self._self_kwargs
        return await traced_acall(
            self._self_telemetry, self.__wrapped__.__aenter__, (), {},
            lambda: extractors.request(client, kwargs, stream=True),
            Result(self._self_handle, extractors.error_type), adopt=is_native(client), patch=self._self_patch)

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.__wrapped__.__aexit__(*exc)
