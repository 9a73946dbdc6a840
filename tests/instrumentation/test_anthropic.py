"""anthropic SDK against the fake provider: one GenAI span per call, on every path, app results unchanged.

Each test runs with native SDK tracing on (llmloop enriches the SDK's span) and off (llmloop makes the
span itself, as on SDKs older than 1.14).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import anthropic
import httpx2
import pytest
from opentelemetry import trace

from llmloop.instrumentation import use_config
from tests.instrumentation.conftest import CLAUDE, FakeProvider, Otel

MESSAGES: list[Any] = [{"role": "user", "content": "hello fake world"}]
TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather for a city",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"]}}]
USAGE = {"x-fake-usage": "input=11,output=7,cache_read=5,cache_creation=3"}
NATIVE_SCOPE = "com.anthropic.sdk.python"


@pytest.fixture(params=["native", "own"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def client_kwargs(otel: Otel, mode: str) -> dict[str, Any]:
    if mode == "native":
        return {"open_telemetry": {"tracer_provider": otel.tracer_provider}}
    return {"open_telemetry": False}


@pytest.fixture
def client(fake_provider: FakeProvider, otel: Otel, mode: str) -> anthropic.Anthropic:
    return fake_provider.anthropic_client(**client_kwargs(otel, mode))


@pytest.fixture
def aclient(fake_provider: FakeProvider, otel: Otel, mode: str) -> anthropic.AsyncAnthropic:
    return fake_provider.async_anthropic_client(**client_kwargs(otel, mode))


def call(**extra: Any) -> dict[str, Any]:
    return {"model": CLAUDE, "max_tokens": 100, "system": "be brief", "messages": MESSAGES,
            "extra_headers": USAGE, **extra}


def check(otel: Otel, cid: str, mode: str, *, stream: bool = False, tokens: bool = True) -> Any:
    """The call's one GenAI span, with the attributes every call must have."""
    span = otel.one(cid)
    assert span.instrumentation_scope.name == (NATIVE_SCOPE if mode == "native" else "llmloop.instrumentation")
    attrs = span.attributes
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == CLAUDE
    assert len(attrs["llmloop.config.fingerprint"]) == 16
    if stream:
        assert attrs["gen_ai.request.stream"] is True
    if tokens:
        assert attrs["gen_ai.usage.input_tokens"] == 11 + 5 + 3
        assert attrs["gen_ai.usage.output_tokens"] == 7
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == 5
        assert attrs["gen_ai.usage.cache_write.input_tokens"] == 3
        assert attrs["gen_ai.response.model"] == "claude-haiku-4-5-20251001"
    return span


def test_create(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        message = client.messages.create(**call())
    assert type(message) is anthropic.types.Message
    assert message.content[0].text == "echo: hello fake world"
    span = check(otel, cid, mode)
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert span.attributes["gen_ai.response.id"] == message.id
    assert span.attributes["gen_ai.request.max_tokens"] == 100
    assert otel.points("gen_ai.client.operation.duration", cid)[0].count == 1
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in otel.points("gen_ai.client.token.usage", cid)}
    assert tokens == {"input": 19, "output": 7}


def test_create_with_tool_use(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        message = client.messages.create(**call(tools=TOOLS))
    [block] = [b for b in message.content if b.type == "tool_use"]
    span = check(otel, cid, mode)
    assert span.attributes["llmloop.tool_calls.names"] == ("get_weather",)
    assert span.attributes["llmloop.tool_calls.ids"] == (block.id,)
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)


def test_fingerprint_tracks_system_prompt_not_user_text(otel: Otel, cid: str, mode: str,
                                                        client: anthropic.Anthropic) -> None:
    with use_config(cid):
        client.messages.create(**call())
        client.messages.create(**call(messages=[{"role": "user", "content": "something else"}]))
        client.messages.create(**call(system="be verbose"))
    first, second, third = (s.attributes["llmloop.config.fingerprint"] for s in otel.spans(cid))
    assert first == second != third


def test_stream_full_read(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        stream = client.messages.create(**call(stream=True, tools=TOOLS))
        assert isinstance(stream, anthropic.Stream)
        events = list(stream)
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    span = check(otel, cid, mode, stream=True)
    assert span.attributes["llmloop.tool_calls.names"] == ("get_weather",)
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert otel.points("gen_ai.client.operation.time_to_first_chunk", cid)[0].count == 1


def test_stream_in_with_block_early_break(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid), client.messages.create(**call(stream=True)) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    span = check(otel, cid, mode, stream=True, tokens=False)
    assert span.end_time is not None
    assert span.status.status_code.name != "ERROR"


def test_stream_close(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        stream = client.messages.create(**call(stream=True))
        next(iter(stream))
        stream.close()
    check(otel, cid, mode, stream=True, tokens=False)


def test_stream_dropped_unconsumed_is_ended_by_gc(otel: Otel, cid: str, mode: str,
                                                  client: anthropic.Anthropic) -> None:
    with use_config(cid):
        stream = client.messages.create(**call(stream=True))
    del stream
    gc.collect()
    check(otel, cid, mode, stream=True, tokens=False)


@pytest.mark.parametrize("how", ["error", "close"])
def test_stream_fails_mid_way(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic, how: str) -> None:
    headers = {**USAGE, "x-fake-stream-error": f"after=3;mode={how}"}
    with use_config(cid), pytest.raises(Exception) as raised:
        for _ in client.messages.create(**call(stream=True, extra_headers=headers)):
            pass
    assert not type(raised.value).__module__.startswith("llmloop")
    span = check(otel, cid, mode, stream=True, tokens=False)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes.get("error.type")


def test_helper_text_stream(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid), client.messages.stream(**call()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: hello fake world" == final.content[0].text
    span = check(otel, cid, mode, stream=True)
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert span.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_helper_events_and_early_exit(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid), client.messages.stream(**call(tools=TOOLS)) as stream:
        kinds = [event.type for event in stream]
    assert "content_block_stop" in kinds
    check(otel, cid, mode, stream=True)
    with use_config(cid + "x"), client.messages.stream(**call()) as stream:
        next(iter(stream))
    check(otel, cid + "x", mode, stream=True, tokens=False)


def test_raw_response(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        raw = client.messages.with_raw_response.create(**call())
    assert raw.http_response.status_code == 200
    message = raw.parse()
    assert message.content[0].text == "echo: hello fake world"
    check(otel, cid, mode)


def test_raw_response_stream(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        raw = client.messages.with_raw_response.create(**call(stream=True))
        events = list(raw.parse())
    assert events[-1].type == "message_stop"
    check(otel, cid, mode, stream=True)


def test_streaming_response(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid), client.messages.with_streaming_response.create(**call()) as response:
        message = response.parse()
    assert message.content[0].text == "echo: hello fake world"
    # Native tracing ends its span inside the app's read of the body: the span has no usage (as without
    # llmloop); llmloop's metrics get it from the app's parse().
    check(otel, cid, mode, tokens=mode == "own")
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in otel.points("gen_ai.client.token.usage", cid)}
    assert tokens == {"input": 19, "output": 7}


def test_streaming_response_stream(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid), client.messages.with_streaming_response.create(**call(stream=True)) as response:
        kinds = [event.type for event in response.parse()]
    assert kinds[-1] == "message_stop"
    check(otel, cid, mode, stream=True)


def test_api_error_reaches_app_untouched(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid), pytest.raises(anthropic.BadRequestError):
        client.messages.create(**call(extra_headers={"x-fake-fail": "400"}))
    span = check(otel, cid, mode, tokens=False)
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "invalid_request_error"
    [point] = otel.points("gen_ai.client.operation.duration", cid)
    assert point.attributes["error.type"] == "invalid_request_error"


def test_retries_are_one_span(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic,
                              fake_provider: FakeProvider) -> None:
    key = fake_provider.new_key()
    headers = {**USAGE, "x-fake-fail": "529", "x-fake-fail-times": "1", "x-fake-key": key}
    with use_config(cid):
        client.messages.create(**call(extra_headers=headers))
    assert len(fake_provider.requests_for(key)) == 2
    check(otel, cid, mode)


def test_span_is_current_during_the_http_call(otel: Otel, cid: str, mode: str, fake_provider: FakeProvider) -> None:
    seen: list[Any] = []
    http = httpx2.Client(event_hooks={"request": [lambda request: seen.append(trace.get_current_span())]})
    client = fake_provider.anthropic_client(http_client=http, **client_kwargs(otel, mode))
    with use_config(cid):
        client.messages.create(**call())
    span = otel.one(cid)
    assert seen[0].get_span_context().span_id == span.context.span_id


def test_content_capture(with_content: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        client.messages.create(**call(tools=TOOLS))
        with client.messages.stream(**call()) as stream:
            stream.until_done()
    plain, streamed = with_content.spans(cid)
    for span in (plain, streamed):
        assert '"be brief"' in span.attributes["gen_ai.system_instructions"]
        assert "hello fake world" in span.attributes["gen_ai.input.messages"]
    assert "get_weather" in plain.attributes["gen_ai.output.messages"]
    assert "get_weather" in plain.attributes["gen_ai.tool.definitions"]
    assert "echo: hello fake world" in streamed.attributes["gen_ai.output.messages"]


def test_no_content_by_default(otel: Otel, cid: str, mode: str, client: anthropic.Anthropic) -> None:
    with use_config(cid):
        client.messages.create(**call())
    attrs = otel.one(cid).attributes
    assert not any(k in attrs for k in ("gen_ai.input.messages", "gen_ai.output.messages",
                                        "gen_ai.system_instructions"))


# --- async -------------------------------------------------------------------------------------------------


def test_async_create_and_stream(otel: Otel, cid: str, mode: str, aclient: anthropic.AsyncAnthropic) -> None:
    async def main() -> tuple[str, list[str], str]:
        with use_config(cid):
            message = await aclient.messages.create(**call(tools=TOOLS))
        with use_config(cid + "s"):
            stream = await aclient.messages.create(**call(stream=True))
            assert isinstance(stream, anthropic.AsyncStream)
            kinds = [event.type async for event in stream]
        with use_config(cid + "h"):
            async with aclient.messages.stream(**call()) as helper:
                text = "".join([t async for t in helper.text_stream])
        return message.content[-1].type, kinds, text

    last, kinds, text = asyncio.run(main())
    assert last == "tool_use" and kinds[-1] == "message_stop" and text == "echo: hello fake world"
    assert check(otel, cid, mode).attributes["llmloop.tool_calls.names"] == ("get_weather",)
    check(otel, cid + "s", mode, stream=True)
    check(otel, cid + "h", mode, stream=True)


def test_async_early_exit_error_and_raw(otel: Otel, cid: str, mode: str, aclient: anthropic.AsyncAnthropic) -> None:
    async def main() -> None:
        with use_config(cid + "b"):
            stream = await aclient.messages.create(**call(stream=True))
            async for _ in stream:
                break
            await stream.close()
        with use_config(cid + "e"), pytest.raises(anthropic.RateLimitError):
            await aclient.messages.create(**call(extra_headers={"x-fake-fail": "429"}), )
        with use_config(cid + "r"):
            raw = await aclient.messages.with_raw_response.create(**call())
            assert (await raw.parse()).content[0].text == "echo: hello fake world"
        with use_config(cid + "s"):
            async with aclient.messages.with_streaming_response.create(**call(stream=True)) as response:
                assert [e.type async for e in await response.parse()][-1] == "message_stop"

        with use_config(cid + "x"):
            headers = {**USAGE, "x-fake-stream-error": "after=3;mode=error"}
            with pytest.raises(anthropic.APIStatusError):
                async for _ in await aclient.messages.create(**call(stream=True, extra_headers=headers)):
                    pass
        with use_config(cid + "g"):
            dropped = await aclient.messages.create(**call(stream=True))
            await dropped.__anext__()
        del dropped
        gc.collect()

    asyncio.run(main())
    gc.collect()
    check(otel, cid + "b", mode, stream=True, tokens=False)
    assert check(otel, cid + "x", mode, stream=True, tokens=False).status.status_code.name == "ERROR"
    check(otel, cid + "g", mode, stream=True, tokens=False)
    assert check(otel, cid + "e", mode, tokens=False).attributes["error.type"] == "rate_limit_error"
    check(otel, cid + "r", mode)
    check(otel, cid + "s", mode, stream=True)
