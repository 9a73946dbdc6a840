"""openai SDK against the fake provider: chat, responses, embeddings, Azure; sync and async; every exit path."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from opentelemetry import trace

from llmloop.instrumentation import use_config
from tests.instrumentation.conftest import GPT, FakeProvider, Otel

MESSAGES: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello fake world"}]
TOOLS: list[Any] = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
USAGE = {"x-fake-usage": "input=11,output=7,cache_read=5,reasoning=2"}
VOLATILE = {"id", "created", "created_at", "completed_at", "sequence_number", "call_id", "item_id"}


@pytest.fixture(params=["openai", "azure"])
def flavour(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def client(fake_provider: FakeProvider, flavour: str) -> openai.OpenAI:
    return fake_provider.openai_client() if flavour == "openai" else fake_provider.azure_openai_client()


@pytest.fixture
def aclient(fake_provider: FakeProvider, flavour: str) -> openai.AsyncOpenAI:
    return fake_provider.async_openai_client() if flavour == "openai" else \
        fake_provider.async_azure_openai_client()


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": GPT, "messages": MESSAGES, "temperature": 0.3, "extra_headers": USAGE, **extra}


def check(otel: Otel, cid: str, flavour: str, *, stream: bool = False, tokens: bool = True,
          operation: str = "chat") -> Any:
    span = otel.one(cid)
    attrs = span.attributes
    assert span.instrumentation_scope.name == "llmloop.instrumentation"
    assert span.name == f"{operation} {attrs['gen_ai.request.model']}"
    assert span.kind.name == "CLIENT"
    assert attrs["gen_ai.provider.name"] == ("openai" if flavour == "openai" else "azure.ai.openai")
    assert attrs["gen_ai.operation.name"] == operation
    assert len(attrs["llmloop.config.fingerprint"]) == 16
    assert attrs["server.address"] == "127.0.0.1"
    if stream:
        assert attrs["gen_ai.request.stream"] is True
    if tokens:
        assert attrs["gen_ai.usage.input_tokens"] == 11
        if operation == "chat":
            assert attrs["gen_ai.usage.output_tokens"] == 7
            assert attrs["gen_ai.usage.cache_read.input_tokens"] == 5
            assert attrs["gen_ai.usage.reasoning.output_tokens"] == 2
    return span


def scrub(value: Any) -> Any:
    """A model dump without the per-request random ids and timestamps."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def uninstrumented(otel: Otel, fn: Callable[[], Any]) -> Any:
    """Run `fn` with llmloop switched off (its patches pass calls through), for a baseline."""
    from llmloop.instrumentation.instrumentor import active_telemetry

    telemetry = active_telemetry()
    telemetry.active = False
    try:
        return fn()
    finally:
        telemetry.active = True


# --- chat completions ------------------------------------------------------------------------------------


def test_chat_create(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    with use_config(cid):
        completion = client.chat.completions.create(**chat())
    assert type(completion).__name__ == "ChatCompletion"
    assert completion.choices[0].message.content == "echo: hello fake world"
    span = check(otel, cid, flavour)
    attrs = span.attributes
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["openai.response.system_fingerprint"] == "fp_fake0001"
    assert otel.points("gen_ai.client.operation.duration", cid)[0].attributes["gen_ai.provider.name"] == \
        attrs["gen_ai.provider.name"]


def test_chat_tool_call(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    with use_config(cid):
        completion = client.chat.completions.create(**chat(tools=TOOLS))
    call = completion.choices[0].message.tool_calls[0]
    span = check(otel, cid, flavour)
    assert span.attributes["llmloop.tool_calls.ids"] == (call.id,)
    assert span.attributes["llmloop.tool_calls.names"] == ("get_weather",)
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)


@pytest.mark.parametrize("tools", [None, TOOLS])
def test_chat_stream_gets_usage_and_app_sees_the_same_chunks(otel: Otel, cid: str, flavour: str,
                                                            client: openai.OpenAI, fake_provider: FakeProvider,
                                                            tools: Any) -> None:
    extra = {"tools": tools} if tools else {}
    key = fake_provider.new_key()
    headers = {**USAGE, "x-fake-key": key}
    baseline = uninstrumented(otel, lambda: [scrub(c.to_dict()) for c in client.chat.completions.create(
        **chat(stream=True, extra_headers=headers, **extra))])
    with use_config(cid):
        stream = client.chat.completions.create(**chat(stream=True, extra_headers=headers, **extra))
        assert isinstance(stream, openai.Stream)
        chunks = [scrub(c.to_dict()) for c in stream]
    assert chunks == baseline
    plain, instrumented = fake_provider.requests_for(key)
    assert "stream_options" not in plain["json"]
    assert instrumented["json"]["stream_options"] == {"include_usage": True}
    span = check(otel, cid, flavour, stream=True)
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert span.attributes["gen_ai.response.finish_reasons"] == (("tool_calls",) if tools else ("stop",))
    if tools:
        assert span.attributes["llmloop.tool_calls.names"] == ("get_weather",)


def test_chat_stream_with_callers_stream_options_is_left_alone(otel: Otel, cid: str, flavour: str,
                                                               client: openai.OpenAI) -> None:
    with use_config(cid):
        chunks = list(client.chat.completions.create(**chat(stream=True, stream_options={"include_usage": True})))
    assert chunks[-1].usage is not None and not chunks[-1].choices  # the app asked for it: it gets it
    check(otel, cid, flavour, stream=True)
    with use_config(cid + "n"):
        chunks = list(client.chat.completions.create(**chat(stream=True, stream_options={"include_usage": False})))
    assert all(c.usage is None for c in chunks)
    check(otel, cid + "n", flavour, stream=True, tokens=False)


def test_stream_usage_can_be_switched_off(otel: Otel, cid: str, flavour: str, client: openai.OpenAI,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMLOOP_OPENAI_STREAM_USAGE", "off")
    otel.instrument()
    try:
        with use_config(cid):
            list(client.chat.completions.create(**chat(stream=True)))
        check(otel, cid, flavour, stream=True, tokens=False)
    finally:
        monkeypatch.delenv("LLMLOOP_OPENAI_STREAM_USAGE")
        otel.instrument()


def test_chat_stream_early_break_close_and_gc(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    with use_config(cid + "b"), client.chat.completions.create(**chat(stream=True)) as stream:
        for _ in stream:
            break
    with use_config(cid + "c"):
        stream = client.chat.completions.create(**chat(stream=True))
        next(stream)
        stream.close()
    with use_config(cid + "g"):
        stream = client.chat.completions.create(**chat(stream=True))
    del stream
    gc.collect()
    for suffix in "bcg":
        span = check(otel, cid + suffix, flavour, stream=True, tokens=False)
        assert span.status.status_code.name == "UNSET"


def test_chat_stream_error_mid_way(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    headers = {**USAGE, "x-fake-stream-error": "after=2;mode=error"}
    with use_config(cid), pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(**chat(stream=True, extra_headers=headers)):
            pass
    span = check(otel, cid, flavour, stream=True, tokens=False)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"]


def test_chat_stream_helper(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    with use_config(cid), client.chat.completions.stream(**chat()) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.delta" in kinds
    assert final.choices[0].message.content == "echo: hello fake world"
    assert final.usage is None  # as without llmloop: the helper never saw the injected usage chunk
    check(otel, cid, flavour, stream=True)


def test_raw_and_streaming_response(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    with use_config(cid + "r"):
        raw = client.chat.completions.with_raw_response.create(**chat())
    assert raw.headers.get("x-request-id")
    assert raw.parse().choices[0].message.content == "echo: hello fake world"
    with use_config(cid + "s"):
        raw = client.chat.completions.with_raw_response.create(**chat(stream=True))
        chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)  # no usage injected for raw calls
    with use_config(cid + "w"), client.chat.completions.with_streaming_response.create(**chat()) as response:
        assert response.parse().choices[0].message.content == "echo: hello fake world"
    with use_config(cid + "ws"), client.chat.completions.with_streaming_response.create(
            **chat(stream=True)) as response:
        assert list(response.iter_lines())
    check(otel, cid + "r", flavour)
    check(otel, cid + "s", flavour, stream=True, tokens=False)
    check(otel, cid + "w", flavour)
    check(otel, cid + "ws", flavour, stream=True, tokens=False)


def test_errors_and_retries(otel: Otel, cid: str, flavour: str, client: openai.OpenAI,
                            fake_provider: FakeProvider) -> None:
    with use_config(cid + "e"), pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**chat(extra_headers={"x-fake-fail": "400"}))
    span = check(otel, cid + "e", flavour, tokens=False)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "invalid_request_error"
    key = fake_provider.new_key()
    with use_config(cid + "r"):
        client.chat.completions.create(**chat(extra_headers={**USAGE, "x-fake-fail": "500",
                                                             "x-fake-fail-times": "1", "x-fake-key": key}))
    assert len(fake_provider.requests_for(key)) == 2
    check(otel, cid + "r", flavour)


def test_span_is_current_during_the_http_call(otel: Otel, cid: str, fake_provider: FakeProvider) -> None:
    seen: list[Any] = []
    http = httpx2.Client(event_hooks={"request": [lambda request: seen.append(trace.get_current_span())]})
    with use_config(cid):
        fake_provider.openai_client(http_client=http).chat.completions.create(**chat())
    assert seen[0].get_span_context().span_id == otel.one(cid).context.span_id


def test_content_capture(with_content: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    with use_config(cid):
        client.chat.completions.create(**chat(tools=TOOLS))
        list(client.chat.completions.create(**chat(stream=True)))
    plain, streamed = with_content.spans(cid)
    for span in (plain, streamed):
        assert '"be brief"' in span.attributes["gen_ai.system_instructions"]
        assert "hello fake world" in span.attributes["gen_ai.input.messages"]
        assert "be brief" not in span.attributes["gen_ai.input.messages"]
    assert "get_weather" in plain.attributes["gen_ai.output.messages"]
    assert "echo: hello fake world" in streamed.attributes["gen_ai.output.messages"]


# --- responses and embeddings ----------------------------------------------------------------------------


def test_responses_create_and_stream(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    if flavour == "azure":
        pytest.skip("the Responses API is served at the OpenAI base URL in these tests")
    kwargs = {"model": GPT, "instructions": "be brief", "input": "hello fake world", "extra_headers": USAGE}
    with use_config(cid):
        response = client.responses.create(**kwargs)
    assert response.output_text == "echo: hello fake world"
    span = check(otel, cid, flavour, tokens=False)
    assert span.attributes["gen_ai.usage.output_tokens"] == 7
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    with use_config(cid + "s"):
        events = [e.type for e in client.responses.create(stream=True, tools=TOOLS, **kwargs)]
    assert events[-1] == "response.completed"
    span = check(otel, cid + "s", flavour, stream=True, tokens=False)
    assert span.attributes["llmloop.tool_calls.names"] == ("get_weather",)
    assert span.attributes["gen_ai.usage.input_tokens"] == 11
    with use_config(cid + "h"), client.responses.stream(**kwargs) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert text == "echo: hello fake world"
    assert check(otel, cid + "h", flavour, stream=True, tokens=False).attributes[
        "gen_ai.response.time_to_first_chunk"] > 0


def test_embeddings(otel: Otel, cid: str, flavour: str, client: openai.OpenAI) -> None:
    with use_config(cid):
        result = client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=4,
                                          extra_headers=USAGE)
    assert len(result.data[0].embedding) == 4
    span = check(otel, cid, flavour, operation="embeddings")
    assert span.attributes["gen_ai.embeddings.dimension.count"] == 4


def test_old_azure_api_version_gets_no_stream_options(otel: Otel, cid: str, fake_provider: FakeProvider) -> None:
    key = fake_provider.new_key()
    client = fake_provider.azure_openai_client(api_version="2024-06-01")
    with use_config(cid):
        list(client.chat.completions.create(**chat(stream=True, extra_headers={"x-fake-key": key})))
    assert "stream_options" not in fake_provider.requests_for(key)[0]["json"]


# --- async -------------------------------------------------------------------------------------------------


def test_async_paths(otel: Otel, cid: str, flavour: str, aclient: openai.AsyncOpenAI) -> None:
    async def main() -> None:
        with use_config(cid + "c"):
            completion = await aclient.chat.completions.create(**chat(tools=TOOLS))
            assert completion.choices[0].message.tool_calls
        with use_config(cid + "s"):
            stream = await aclient.chat.completions.create(**chat(stream=True))
            assert isinstance(stream, openai.AsyncStream)
            chunks = [c async for c in stream]
            assert all(c.choices for c in chunks[1 if flavour == "azure" else 0:])
        with use_config(cid + "b"):
            stream = await aclient.chat.completions.create(**chat(stream=True))
            async for _ in stream:
                break
            await stream.close()
        with use_config(cid + "h"):
            async with aclient.chat.completions.stream(**chat()) as helper:
                final = await helper.get_final_completion()
                assert final.choices[0].message.content == "echo: hello fake world"
        with use_config(cid + "r"):
            raw = await aclient.chat.completions.with_raw_response.create(**chat())
            assert raw.parse().choices[0].message.content
        with use_config(cid + "w"):
            async with aclient.chat.completions.with_streaming_response.create(**chat()) as response:
                assert (await response.parse()).choices[0].message.content
        with use_config(cid + "e"), pytest.raises(openai.RateLimitError):
            await aclient.chat.completions.create(**chat(extra_headers={"x-fake-fail": "429"}), )
        with use_config(cid + "m"):
            await aclient.embeddings.create(model="text-embedding-3-small", input="hi", extra_headers=USAGE)

    asyncio.run(main())
    assert check(otel, cid + "c", flavour).attributes["llmloop.tool_calls.names"] == ("get_weather",)
    check(otel, cid + "s", flavour, stream=True)
    check(otel, cid + "b", flavour, stream=True, tokens=False)
    check(otel, cid + "h", flavour, stream=True)
    check(otel, cid + "r", flavour)
    check(otel, cid + "w", flavour)
    assert check(otel, cid + "e", flavour, tokens=False).attributes["error.type"] in ("requests", "rate_limit_exceeded")
    check(otel, cid + "m", flavour, operation="embeddings")
