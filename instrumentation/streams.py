"""Stream and raw-response wrappers that end the call's invocation exactly once, on every exit path.

A wrapper is a transparent proxy (`wrapt.ObjectProxy`: `isinstance`, attributes and methods are the
SDK object's) that adds three hooks around the SDK's own iteration:

- per chunk: the provider's `ChunkHandler.chunk()`, constant-time bookkeeping; it may hide a chunk
  the app would not have received without llmloop (OpenAI's injected usage-only chunk);
- end: full consumption, `close()`, `with`-exit, or garbage collection of an unfinished stream;
- error: an exception raised by the SDK mid-stream (re-raised untouched).

A handler that raises is switched off for the rest of the stream; the app's iteration never sees it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import wrapt

from llmloop.instrumentation.invocation import Invocation

log = logging.getLogger("llmloop.instrumentation")


class ChunkHandler:
    """Provider hook for a streamed response. Subclasses keep per-chunk work constant-time."""

    __slots__ = ("inv",)

    def __init__(self, inv: Invocation) -> None:
        self.inv = inv

    def chunk(self, chunk: Any) -> bool:
        """Observe one chunk; return True to hide it from the application."""
        return False

    def end(self) -> None:
        """Move what was accumulated into the invocation (called once, before it finishes)."""

    def error_type(self, error: BaseException) -> str | None:
        """The provider's `error.type` for a mid-stream error (None: the core's default)."""
        return None


def end_invocation(inv: Invocation, handler: ChunkHandler | None, error: BaseException | None) -> None:
    """Flush the handler into the invocation and finish or fail it. Idempotent; never raises."""
    if inv.done:
        return
    try:
        if handler is not None:
            handler.end()
    except Exception:
        log.debug("llmloop: stream handler failed at end", exc_info=True)
    try:
        if error is None:
            inv.finish()
        else:
            inv.fail(error, handler.error_type(error) if handler is not None else None)
    except Exception:
        log.debug("llmloop: could not end the invocation", exc_info=True)


class SyncStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """Wraps an SDK `Stream`: iteration, `close()`, `with` and GC all end the invocation once."""

    def __init__(self, wrapped: Any, inv: Invocation, handler: ChunkHandler) -> None:
        super().__init__(wrapped)
        self._self_inv = inv
        self._self_handler: ChunkHandler | None = handler
        self._self_next: Callable[[], Any] | None = None

    def _self_end(self, error: BaseException | None = None) -> None:
        end_invocation(self._self_inv, self._self_handler, error)

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        step = self._self_next
        if step is None:
            wrapped = self.__wrapped__
            step = wrapped.__next__ if hasattr(wrapped, "__next__") else iter(wrapped).__next__
            self._self_next = step
        while True:
            try:
                chunk = step()
            except StopIteration:
                self._self_end()
                raise
            except Exception as error:
                self._self_end(error)
                raise
            except BaseException:
                self._self_end()
                raise
            handler = self._self_handler
            if handler is not None:
                try:
                    if handler.chunk(chunk):
                        continue
                except Exception:
                    log.debug("llmloop: stream handler failed; stopped observing this stream", exc_info=True)
                    self._self_handler = None
            return chunk

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_end()

    def __enter__(self) -> SyncStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc)
        finally:
            self._self_end()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._self_end()


class AsyncStream(wrapt.ObjectProxy):  # type: ignore[misc]
    """Wraps an SDK `AsyncStream`: async iteration, `close()`, `async with` and GC end the invocation once."""

    def __init__(self, wrapped: Any, inv: Invocation, handler: ChunkHandler) -> None:
        super().__init__(wrapped)
        self._self_inv = inv
        self._self_handler: ChunkHandler | None = handler
        self._self_next: Callable[[], Any] | None = None

    def _self_end(self, error: BaseException | None = None) -> None:
        end_invocation(self._self_inv, self._self_handler, error)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        step = self._self_next
        if step is None:
            wrapped = self.__wrapped__
            step = wrapped.__anext__ if hasattr(wrapped, "__anext__") else wrapped.__aiter__().__anext__
            self._self_next = step
        while True:
            try:
                chunk = await step()
            except StopAsyncIteration:
                self._self_end()
                raise
            except Exception as error:
                self._self_end(error)
                raise
            except BaseException:
                self._self_end()
                raise
            handler = self._self_handler
            if handler is not None:
                try:
                    if handler.chunk(chunk):
                        continue
                except Exception:
                    log.debug("llmloop: stream handler failed; stopped observing this stream", exc_info=True)
                    self._self_handler = None
            return chunk

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_end()

    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._self_end()

    async def __aenter__(self) -> AsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc)
        finally:
            self._self_end()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._self_end()


def body_read(raw: Any) -> bool:
    """Whether the raw response's body has been read into memory (so `parse()` costs no I/O)."""
    try:
        raw.http_response.content  # noqa: B018 - raises ResponseNotRead when unread
        return True
    except Exception:
        return False


class RawResponse(wrapt.ObjectProxy):  # type: ignore[misc]
    """Wraps an SDK raw response whose body is still unread (streams, `with_streaming_response`).

    `parse()` hands back a wrapped stream, or records the parsed body; `close()`, `with`-exit of the
    SDK's response context manager and GC end the invocation.
    """

    def __init__(self, wrapped: Any, inv: Invocation, wrap_stream: Callable[[Any], Any],
                 record: Callable[[Invocation, Any], None]) -> None:
        super().__init__(wrapped)
        self._self_inv = inv
        self._self_wrap_stream = wrap_stream
        self._self_record = record
        self._self_streams: dict[int, Any] = {}

    def _self_parsed(self, result: Any) -> Any:
        try:
            wrapped = self._self_wrap_stream(result)
            if wrapped is not result:
                key = id(result)
                cached = self._self_streams.get(key)
                if cached is None:
                    self._self_streams[key] = cached = wrapped
                return cached
            if not self._self_inv.done:
                self._self_record(self._self_inv, result)
                end_invocation(self._self_inv, None, None)
        except Exception:
            log.debug("llmloop: could not record a parsed raw response", exc_info=True)
        return result

    def _self_end(self) -> None:
        inv = self._self_inv
        if inv.done or self._self_streams:
            return
        try:
            if body_read(self.__wrapped__):
                self._self_record(inv, self.__wrapped__.parse())
        except Exception:
            log.debug("llmloop: could not parse the raw response body", exc_info=True)
        end_invocation(inv, None, None)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_parsed(self.__wrapped__.parse(*args, **kwargs))

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_end()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._self_end()


class AsyncRawResponse(RawResponse):
    """`RawResponse` for the async SDK response, whose `parse()`/`close()` are coroutines."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return self._self_parsed(await self.__wrapped__.parse(*args, **kwargs))

    async def close(self) -> Any:  # type: ignore[override]
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_end_async()

    def _self_end_async(self) -> None:
        # The body of an async response cannot be parsed synchronously; end with what is known.
        inv = self._self_inv
        if not inv.done and not self._self_streams:
            end_invocation(inv, None, None)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._self_end_async()


def sync_result(stream_types: tuple[type, ...], raw_types: tuple[type, ...],
                handler_cls: Callable[[Invocation], ChunkHandler],
                record: Callable[[Invocation, Any], None]) -> Callable[[Invocation, Any], Any]:
    """A provider's sync result handler: wrap streams and unread raw responses, record the rest now."""

    def wrap_stream(inv: Invocation, value: Any) -> Any:
        return SyncStream(value, inv, handler_cls(inv)) if isinstance(value, stream_types) else value

    def handle(inv: Invocation, value: Any) -> Any:
        if isinstance(value, stream_types):
            return SyncStream(value, inv, handler_cls(inv))
        if isinstance(value, raw_types):
            if not inv.request.stream and body_read(value):
                record(inv, value.parse())
                inv.finish()
                return value
            return RawResponse(value, inv, lambda parsed: wrap_stream(inv, parsed), record)
        record(inv, value)
        inv.finish()
        return value

    return handle


def async_result(stream_types: tuple[type, ...], raw_types: tuple[type, ...], async_raw_types: tuple[type, ...],
                 handler_cls: Callable[[Invocation], ChunkHandler],
                 record: Callable[[Invocation, Any], None]) -> Callable[[Invocation, Any], Any]:
    """A provider's async result handler (a coroutine function); see `sync_result`."""
    sync_handle = sync_result((), raw_types, handler_cls, record)

    def wrap_stream(inv: Invocation, value: Any) -> Any:
        return AsyncStream(value, inv, handler_cls(inv)) if isinstance(value, stream_types) else value

    async def handle(inv: Invocation, value: Any) -> Any:
        if isinstance(value, stream_types):
            return AsyncStream(value, inv, handler_cls(inv))
        if isinstance(value, async_raw_types):
            if not inv.request.stream and body_read(value):
                record(inv, await value.parse())
                inv.finish()
                return value
            return AsyncRawResponse(value, inv, lambda parsed: wrap_stream(inv, parsed), record)
        if isinstance(value, raw_types):
            return RawResponse(value, inv, lambda parsed: wrap_stream(inv, parsed), record) \
                if inv.request.stream or not body_read(value) else sync_handle(inv, value)
        return sync_handle(inv, value)

    return handle
