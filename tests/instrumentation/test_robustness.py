"""llmloop's own failures never reach the app; patches come off cleanly; other instrumentations are not doubled."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import wrapt
from opentelemetry.sdk.trace import TracerProvider

from llmloop.instrumentation import use_config
from llmloop.instrumentation.anthropic import extractors as anthropic_extractors
from llmloop.instrumentation.instrumentor import active_telemetry
from llmloop.instrumentation.invocation import Request
from llmloop.instrumentation.openai import extractors as openai_extractors
from llmloop.instrumentation.streams import AsyncStream, ChunkHandler, SyncStream
from tests.instrumentation.conftest import CLAUDE, GPT, FakeProvider, Otel

MESSAGES: list[Any] = [{"role": "user", "content": "hello fake world"}]


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("llmloop bug")


@pytest.mark.parametrize("native", [True, False])
def test_request_extractor_bug_leaves_the_call_untraced(otel: Otel, cid: str, fake_provider: FakeProvider,
                                                        monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(anthropic_extractors, "request", boom)
    option = {"tracer_provider": otel.tracer_provider} if native else False
    client = fake_provider.anthropic_client(open_telemetry=option)
    with use_config(cid):
        message = client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)
        events = list(client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES, stream=True))
    assert message.content[0].text == "echo: hello fake world"
    assert events[-1].type == "message_stop"
    # llmloop made no span of its own. Native tracing still makes its span, which the span processor tags
    # with the config id as it does any GenAI span (the fingerprint needs the request, so it is missing).
    spans = otel.spans(cid)
    assert len(spans) == (2 if native else 0)
    assert all("llmloop.config.fingerprint" not in s.attributes for s in spans)


@pytest.mark.parametrize("native", [True, False])
def test_response_extractor_bug_still_ends_the_span(otel: Otel, cid: str, fake_provider: FakeProvider,
                                                    monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(anthropic_extractors, "record_message", boom)
    option = {"tracer_provider": otel.tracer_provider} if native else False
    client = fake_provider.anthropic_client(open_telemetry=option)
    with use_config(cid):
        message = client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)
    assert message.content[0].text == "echo: hello fake world"
    assert otel.one(cid).end_time is not None


def test_chunk_handler_bug_does_not_disturb_iteration(otel: Otel, cid: str, fake_provider: FakeProvider,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_extractors.ChatChunkHandler, "chunk", boom)
    client = fake_provider.openai_client()
    with use_config(cid):
        chunks = list(client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True))
    # The injected usage chunk is still asked for; with the handler off it is shown, never an exception.
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello fake world"
    assert otel.one(cid).end_time is not None


def test_tracer_failure_passes_the_call_through(otel: Otel, cid: str, fake_provider: FakeProvider,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = active_telemetry()
    monkeypatch.setattr(telemetry.tracer, "start_span", boom)
    completion = fake_provider.openai_client().chat.completions.create(model=GPT, messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hello fake world"


def test_metrics_failure_is_contained(otel: Otel, cid: str, fake_provider: FakeProvider,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(active_telemetry(), "record", boom)
    with use_config(cid):
        fake_provider.openai_client().chat.completions.create(model=GPT, messages=MESSAGES)
    assert otel.one(cid).end_time is not None


class Handler(ChunkHandler):
    __slots__ = ("chunks", "ends")

    def __init__(self, inv: Any) -> None:
        super().__init__(inv)
        self.chunks = 0
        self.ends = 0

    def chunk(self, chunk: Any) -> bool:
        self.chunks += 1
        return chunk == "hidden"

    def end(self) -> None:
        self.ends += 1


class Source:
    """A stand-in SDK stream: an iterator with close() and a context manager."""

    def __init__(self, items: list[Any], fail_at: int | None = None) -> None:
        self.items, self.fail_at, self.closed, self.index = items, fail_at, 0, 0

    def __next__(self) -> Any:
        if self.fail_at is not None and self.index == self.fail_at:
            raise ConnectionError("cut")
        if self.index >= len(self.items):
            raise StopIteration
        self.index += 1
        return self.items[self.index - 1]

    def __iter__(self) -> Iterator[Any]:
        return self

    def close(self) -> None:
        self.closed += 1

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def invocation(otel: Otel, cid: str) -> Any:
    telemetry = active_telemetry()
    with use_config(cid):
        return telemetry.start(lambda: Request(provider="openai", operation="chat", model="m", stream=True))


@pytest.mark.parametrize("path", ["exhaust", "break", "close", "with", "error", "gc"])
def test_sync_stream_ends_exactly_once(otel: Otel, cid: str, path: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    inv = invocation(otel, cid)
    source = Source(["a", "hidden", "b"], fail_at=1 if path == "error" else None)
    handler = Handler(inv)
    stream = SyncStream(source, inv, handler)
    with caplog.at_level(logging.WARNING):
        if path == "exhaust":
            assert list(stream) == ["a", "b"]
            stream.close()
        elif path == "break":
            for _ in stream:
                break
            del stream
        elif path == "close":
            next(stream)
            stream.close()
            stream.close()
        elif path == "with":
            with stream as entered:
                assert entered is stream
                next(stream)
        elif path == "error":
            with pytest.raises(ConnectionError):
                list(stream)
        else:
            del stream
        gc.collect()
    span = otel.one(cid)
    assert handler.ends == 1
    assert (span.status.status_code.name == "ERROR") == (path == "error")
    assert "ended span" not in caplog.text


def test_async_stream_ends_exactly_once(otel: Otel, cid: str) -> None:
    class AsyncSource:
        def __init__(self) -> None:
            self.items = ["a", "b"]

        async def __anext__(self) -> Any:
            if not self.items:
                raise StopAsyncIteration
            return self.items.pop(0)

        async def close(self) -> None:
            pass

    inv = invocation(otel, cid)
    handler = Handler(inv)
    stream = AsyncStream(AsyncSource(), inv, handler)

    async def main() -> list[Any]:
        got = [item async for item in stream]
        await stream.close()
        return got

    assert asyncio.run(main()) == ["a", "b"]
    otel.one(cid)
    assert handler.ends == 1


def test_proxy_is_transparent() -> None:
    telemetry = active_telemetry()
    inv = telemetry.invocation(lambda: Request(provider="openai", operation="chat", model="m"))
    source = Source([])
    stream = SyncStream(source, inv, ChunkHandler(inv))
    assert isinstance(stream, Source)
    assert stream.items == []
    stream.close()


def test_uninstrument_restores_methods_and_cached_wrappers_pass_through(otel: Otel, cid: str,
                                                                       fake_provider: FakeProvider) -> None:
    client = fake_provider.openai_client()
    cached = client.chat.completions.with_raw_response  # holds llmloop's wrapper of `create`
    owner = openai.resources.chat.completions.Completions
    assert isinstance(owner.__dict__["create"], wrapt.FunctionWrapper)
    from llmloop.instrumentation import instrument, uninstrument

    uninstrument()
    try:
        assert not isinstance(owner.__dict__["create"], wrapt.FunctionWrapper)
        with use_config(cid):
            cached.create(model=GPT, messages=MESSAGES).parse()
            client.chat.completions.create(model=GPT, messages=MESSAGES)
        assert otel.spans(cid) == []
    finally:
        instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert isinstance(owner.__dict__["create"], wrapt.FunctionWrapper)


def test_foreign_outer_span_is_enriched_not_doubled(otel: Otel, cid: str, fake_provider: FakeProvider) -> None:
    tracer = otel.tracer_provider.get_tracer("other.genai.instrumentation")
    client = fake_provider.openai_client()
    with warnings.catch_warnings(record=True), use_config(cid), tracer.start_as_current_span(
            "openai.chat", attributes={"gen_ai.operation.name": "chat", "gen_ai.system": "openai"}):
        client.chat.completions.create(model=GPT, messages=MESSAGES, tools=[])
    span = otel.one(cid)
    assert span.instrumentation_scope.name == "other.genai.instrumentation"
    assert len(span.attributes["llmloop.config.fingerprint"]) == 16
    assert otel.points("gen_ai.client.operation.duration", cid) == []


def test_foreign_inner_wrapper_is_detected_and_its_span_adopted(otel: Otel, cid: str,
                                                                fake_provider: FakeProvider) -> None:
    from llmloop.instrumentation import instrument, uninstrument

    tracer = otel.tracer_provider.get_tracer("other.genai.instrumentation")

    def other(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with tracer.start_as_current_span("openai.chat", attributes={"gen_ai.operation.name": "chat"}):
            return wrapped(*args, **kwargs)

    owner = openai.resources.embeddings.Embeddings
    uninstrument()
    original = owner.__dict__["create"]
    wrapt.wrap_function_wrapper(owner, "create", other)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
        assert any("already wraps the openai SDK" in str(w.message) for w in caught)
        with use_config(cid):
            fake_provider.openai_client().embeddings.create(model="text-embedding-3-small", input="x")
        span = otel.one(cid)
        assert span.instrumentation_scope.name == "other.genai.instrumentation"
        assert "llmloop.config.fingerprint" in span.attributes
    finally:
        uninstrument()
        owner.create = original
        instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)


def test_processor_is_added_once_per_provider(otel: Otel) -> None:
    from llmloop.instrumentation import LlmloopSpanProcessor

    processors = otel.tracer_provider._active_span_processor._span_processors
    assert sum(isinstance(p, LlmloopSpanProcessor) for p in processors) == 1
    assert isinstance(TracerProvider(), TracerProvider)
