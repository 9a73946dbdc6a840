"""The fake provider server against the real `anthropic` and `openai` SDKs (no llmloop involved)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests import fakeprovider
from tests.fakeprovider import FakeProvider, embedding_vector, snapshot

fake_provider = fakeprovider.fake_provider  # the fixture, under its own name so that pytest finds it

CLAUDE = "claude-haiku-4-5"  # not on the SDK's deprecated list, so no DeprecationWarning
MESSAGES: list[Any] = [{"role": "user", "content": "hello fake world"}]
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                  "required": ["city"]}
ANTHROPIC_TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather for a city",
                               "input_schema": WEATHER_SCHEMA}]
OPENAI_TOOLS: list[Any] = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
USAGE = "input=11,output=7,cache_read=5,cache_creation=3,reasoning=2"


def keyed(fp: FakeProvider, **headers: str) -> tuple[str, dict[str, str]]:
    """A fresh x-fake-key and the extra headers that carry it."""
    key = fp.new_key()
    return key, {"x-fake-key": key, **headers}


def test_snapshot_names() -> None:
    assert snapshot("claude-sonnet-4-5", "anthropic") == "claude-sonnet-4-5-20250929"
    assert snapshot("gpt-4o-mini", "openai") == "gpt-4o-mini-2024-07-18"
    assert snapshot("some-custom-model", "openai") == "some-custom-model"


# ---------------------------------------------------------------------------------------------------------------
# Anthropic


def test_anthropic_create(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider)
    message = fake_provider.anthropic_client().messages.create(
        model=CLAUDE, max_tokens=100, system="be brief", messages=MESSAGES, extra_headers=headers)
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello fake world"
    assert message.model == "claude-haiku-4-5-20251001"
    assert message.stop_reason == "end_turn"
    assert message.id.startswith("msg_")
    assert message.usage.input_tokens == 5  # words in system + messages
    assert message.usage.output_tokens == 4
    assert message.usage.cache_read_input_tokens == 0
    [request] = fake_provider.requests_for(key)
    assert (request["method"], request["path"]) == ("POST", "/v1/messages")
    assert request["json"]["messages"] == MESSAGES
    assert request["headers"]["authorization"] == "Bearer test"
    assert "anthropic-version" in request["headers"]


def test_anthropic_usage_with_cache_tokens(fake_provider: FakeProvider) -> None:
    client = fake_provider.anthropic_client(default_headers={"x-fake-usage": USAGE})
    message = client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    with client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
        streamed = stream.get_final_message()
    for usage in (message.usage, streamed.usage):
        assert (usage.input_tokens, usage.output_tokens) == (11, 7)
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (5, 3)


def test_anthropic_stream_helper(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider)
    with fake_provider.anthropic_client().messages.stream(
            model=CLAUDE, max_tokens=100, messages=MESSAGES, extra_headers=headers) as stream:
        chunks = list(stream.text_stream)
        final = stream.get_final_message()
    assert chunks == ["echo:", " hello", " fake", " world"]
    assert final.content[0].type == "text"
    assert final.content[0].text == "echo: hello fake world"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    [request] = fake_provider.requests_for(key)
    assert request["json"]["stream"] is True
    assert request["headers"]["x-stainless-helper-method"] == "stream"


def test_anthropic_raw_stream_events(fake_provider: FakeProvider) -> None:
    events = list(fake_provider.anthropic_client().messages.create(
        model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True))
    types = [event.type for event in events]
    assert types == ["message_start", "content_block_start", *["content_block_delta"] * 4, "content_block_stop",
                     "message_delta", "message_stop"]  # the ping is dropped by the SDK
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.stop_reason is None
    assert start.message.usage.input_tokens == 3
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 4


def test_anthropic_sse_wire_format(fake_provider: FakeProvider) -> None:
    body = {"model": CLAUDE, "max_tokens": 10, "messages": MESSAGES, "stream": True}
    response = httpx2.post(f"{fake_provider.base_url}/v1/messages", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in response.text.split("\n\n") if block]
    names = [block.splitlines()[0].removeprefix("event: ") for block in blocks]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-1] == "message_stop"
    for block in blocks:
        event, data = block.splitlines()
        assert json.loads(data.removeprefix("data: "))["type"] == event.removeprefix("event: ")


def test_anthropic_tool_use(fake_provider: FakeProvider) -> None:
    client = fake_provider.anthropic_client()
    message = client.messages.create(model=CLAUDE, max_tokens=100, tools=ANTHROPIC_TOOLS, messages=MESSAGES)
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "test", "days": 1})
    assert block.id.startswith("toolu_")

    with client.messages.stream(model=CLAUDE, max_tokens=100, tools=ANTHROPIC_TOOLS, messages=MESSAGES) as stream:
        events = list(stream)
        final = stream.get_final_message()
    partial = [e.delta.partial_json for e in events if e.type == "content_block_delta"
               and e.delta.type == "input_json_delta"]
    assert len(partial) > 2 and json.loads("".join(partial)) == {"city": "test", "days": 1}
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "test", "days": 1}

    turn = [*MESSAGES, {"role": "assistant", "content": [block.model_dump(exclude_none=True)]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}]}]
    answer = client.messages.create(model=CLAUDE, max_tokens=100, tools=ANTHROPIC_TOOLS, messages=turn)
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text == "echo: tool result: sunny"


def test_anthropic_thinking_and_max_tokens(fake_provider: FakeProvider) -> None:
    client = fake_provider.anthropic_client()
    with client.messages.stream(model=CLAUDE, max_tokens=2000, messages=MESSAGES,
                                thinking={"type": "enabled", "budget_tokens": 1024}) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in kinds and "signature_delta" in kinds
    assert [block.type for block in final.content] == ["thinking", "text"]
    truncated = client.messages.create(model=CLAUDE, max_tokens=2, messages=MESSAGES)
    assert truncated.stop_reason == "max_tokens"
    assert truncated.content[0].type == "text" and truncated.content[0].text == "echo: hello"


def test_anthropic_async(fake_provider: FakeProvider) -> None:
    async def run() -> tuple[str, list[str], str]:
        async with fake_provider.async_anthropic_client() as client:
            message = await client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
            async with client.messages.stream(model=CLAUDE, max_tokens=100, messages=MESSAGES) as stream:
                chunks = [text async for text in stream.text_stream]
                final = await stream.get_final_message()
            assert message.content[0].type == "text" and final.content[0].type == "text"
            return message.content[0].text, chunks, final.content[0].text

    text, chunks, final = asyncio.run(run())
    assert text == final == "echo: hello fake world"
    assert "".join(chunks) == text


def test_anthropic_count_tokens(fake_provider: FakeProvider) -> None:
    counted = fake_provider.anthropic_client().messages.count_tokens(model=CLAUDE, messages=MESSAGES)
    assert counted.input_tokens == 3


def test_anthropic_raw_and_streaming_response(fake_provider: FakeProvider) -> None:
    client = fake_provider.anthropic_client()
    raw = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=100, messages=MESSAGES)
    assert raw.headers["request-id"].startswith("req_")
    assert raw.parse().model == "claude-haiku-4-5-20251001"
    with client.messages.with_streaming_response.create(
            model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    assert "event: message_stop" in lines


# ---------------------------------------------------------------------------------------------------------------
# OpenAI


def test_openai_chat_create(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-usage": USAGE})
    completion = fake_provider.openai_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers)
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.choices[0].message.content == "echo: hello fake world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 7)
    assert completion.usage.prompt_tokens_details and completion.usage.prompt_tokens_details.cached_tokens == 5
    assert completion.usage.completion_tokens_details
    assert completion.usage.completion_tokens_details.reasoning_tokens == 2
    [request] = fake_provider.requests_for(key)
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer test"


def test_openai_chat_stream_with_usage(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-usage": USAGE})
    chunks = list(fake_provider.openai_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        extra_headers=headers))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello fake world"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens_details and last.usage.prompt_tokens_details.cached_tokens == 5
    assert last.usage.completion_tokens_details and last.usage.completion_tokens_details.reasoning_tokens == 2
    assert all(c.usage is None for c in chunks[:-1])
    assert fake_provider.requests_for(key)[0]["json"]["stream_options"] == {"include_usage": True}

    key, headers = keyed(fake_provider)
    plain = list(fake_provider.openai_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers))
    assert all(c.choices and c.usage is None for c in plain)
    assert "stream_options" not in fake_provider.requests_for(key)[0]["json"]  # the SDK adds nothing by itself


def test_openai_chat_tool_call_stream(fake_provider: FakeProvider) -> None:
    client = fake_provider.openai_client()
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=OPENAI_TOOLS)
    assert completion.choices[0].finish_reason == "tool_calls"
    [call] = completion.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "test", "days": 1}

    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=OPENAI_TOOLS,
                                                 stream=True))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].id.startswith("call_") and deltas[0].function
    assert deltas[0].function.name == "get_weather"
    assert all(d.index == 0 for d in deltas) and len(deltas) > 2
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {"city": "test", "days": 1}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES, tools=OPENAI_TOOLS) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls
    assert final.choices[0].message.tool_calls[0].function.arguments == call.function.arguments

    turn = [*MESSAGES, completion.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=turn, tools=OPENAI_TOOLS)
    assert answer.choices[0].message.content == "echo: tool result: sunny"


def test_openai_chat_max_tokens(fake_provider: FakeProvider) -> None:
    completion = fake_provider.openai_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=2)
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "echo: hello"


def test_openai_responses(fake_provider: FakeProvider) -> None:
    client = fake_provider.openai_client(default_headers={"x-fake-usage": USAGE})
    response = client.responses.create(model="gpt-4o-mini", input="hello fake world", instructions="be brief")
    assert response.output_text == "echo: hello fake world"
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.status == "completed" and response.usage
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 7)
    assert response.usage.input_tokens_details.cached_tokens == 5
    assert response.usage.output_tokens_details.reasoning_tokens == 2

    events = list(client.responses.create(model="gpt-4o-mini", input=MESSAGES, stream=True))
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * 4, "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.usage
    assert completed.response.usage.input_tokens_details.cached_tokens == 5

    with client.responses.stream(model="gpt-4o-mini", input="hello fake world") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "echo: hello fake world"


def test_openai_responses_tool_call(fake_provider: FakeProvider) -> None:
    tools: list[Any] = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": False}]
    client = fake_provider.openai_client()
    response = client.responses.create(model="gpt-4o-mini", input="weather?", tools=tools)
    [call] = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "test", "days": 1}
    with client.responses.stream(model="gpt-4o-mini", input="weather?", tools=tools) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert final.output[0].type == "function_call" and final.output[0].arguments == call.arguments
    answer = client.responses.create(model="gpt-4o-mini", tools=tools, input=[
        {"role": "user", "content": "weather?"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert answer.output_text == "echo: tool result: sunny"


def test_openai_embeddings(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider)
    client = fake_provider.openai_client()
    default = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], extra_headers=headers)
    floats = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float",
                                      dimensions=4, extra_headers=headers)
    sent = [r["json"].get("encoding_format") for r in fake_provider.requests_for(key)]
    assert sent == ["base64", "float"]  # the SDK asks for base64 unless told otherwise, and decodes it
    assert default.data[0].embedding == embedding_vector("a", 8)
    assert default.data[1].embedding == embedding_vector("b", 8)
    assert floats.data[0].embedding == embedding_vector("a", 4)
    assert default.model == "text-embedding-3-small" and default.usage.prompt_tokens == 2


def test_openai_async(fake_provider: FakeProvider) -> None:
    async def run() -> tuple[str | None, str, str, str]:
        async with fake_provider.async_openai_client() as client:
            completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            response = await client.responses.create(model="gpt-4o-mini", input="hello fake world")
        async with fake_provider.async_azure_openai_client() as azure:
            stream = await azure.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            azure_text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return completion.choices[0].message.content, text, response.output_text, azure_text

    assert asyncio.run(run()) == ("echo: hello fake world",) * 4


def test_openai_raw_and_streaming_response(fake_provider: FakeProvider) -> None:
    client = fake_provider.openai_client()
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().choices[0].message.content == "echo: hello fake world"
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"


def test_azure_openai(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider)
    client = fake_provider.azure_openai_client(default_headers=headers)
    completion = client.chat.completions.create(model="my-deployment", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hello fake world"
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[0].choices == [] and chunks[0].model == ""  # Azure's prompt-filter chunk comes first
    assert chunks[1].model == "gpt-4o-mini-2024-07-18"
    client.embeddings.create(model="embed-deployment", input="hi")
    requests = fake_provider.requests_for(key)
    assert [r["path"] for r in requests] == ["/openai/deployments/my-deployment/chat/completions",
                                              "/openai/deployments/gpt-4o-mini/chat/completions",
                                              "/openai/deployments/embed-deployment/embeddings"]
    assert all(r["query"] == {"api-version": "2024-10-21"} for r in requests)
    assert requests[0]["headers"]["api-key"] == "test" and "authorization" not in requests[0]["headers"]


# ---------------------------------------------------------------------------------------------------------------
# Fault injection


@pytest.mark.parametrize("status", [429, 500, 529])
def test_anthropic_retries_then_succeeds(fake_provider: FakeProvider, status: int) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-fail": str(status), "x-fake-fail-times": "2"})
    started = time.monotonic()
    message = fake_provider.anthropic_client(max_retries=2).messages.create(
        model=CLAUDE, max_tokens=100, messages=MESSAGES, extra_headers=headers)
    assert message.content[0].type == "text"
    requests = fake_provider.requests_for(key)
    assert [r["fault"] for r in requests] == [status, status, None]
    assert [r["headers"]["x-stainless-retry-count"] for r in requests] == ["0", "1", "2"]
    assert time.monotonic() - started < 2  # retry-after-ms: 1, not the SDK's 0.5 s backoff


def test_openai_retries_then_succeeds(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-fail": "429", "x-fake-fail-times": "2"})
    chunks = list(fake_provider.openai_client(max_retries=2).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(fake_provider.requests_for(key)) == 3


def test_retries_exhausted(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-fail": "529", "x-fake-fail-times": "5"})
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        fake_provider.anthropic_client(max_retries=1).messages.create(
            model=CLAUDE, max_tokens=100, messages=MESSAGES, extra_headers=headers)
    assert overloaded.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                                     "request_id": overloaded.value.response.headers["request-id"]}
    assert len(fake_provider.requests_for(key)) == 2
    with pytest.raises(openai.RateLimitError) as limited:
        fake_provider.openai_client(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-fake-fail": "429"})
    assert (limited.value.code, limited.value.type) == ("rate_limit_exceeded", "requests")


def test_bad_request_is_not_retried(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-fail": "400"})
    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        fake_provider.anthropic_client(max_retries=2).messages.create(
            model=CLAUDE, max_tokens=100, messages=MESSAGES, extra_headers=headers)
    assert anthropic_error.value.status_code == 400
    assert isinstance(anthropic_error.value.body, dict)
    assert anthropic_error.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as openai_error:
        fake_provider.openai_client(max_retries=2).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers)
    assert openai_error.value.type == "invalid_request_error"
    assert len(fake_provider.requests_for(key)) == 2


def test_invalid_body_gets_400(fake_provider: FakeProvider) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        fake_provider.anthropic_client().messages.create(
            model=CLAUDE, messages=MESSAGES, max_tokens=1, extra_body={"max_tokens": None})


def test_stream_aborted_mid_way(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-stream-error": "after=4"})
    seen: list[str] = []
    # The anthropic SDK lets the transport error through unwrapped; the openai SDK wraps it.
    with pytest.raises(httpx2.RemoteProtocolError), fake_provider.anthropic_client().messages.stream(
            model=CLAUDE, max_tokens=100, messages=MESSAGES, extra_headers=headers) as stream:
        seen.extend(stream.text_stream)
    assert seen == ["echo:"]  # message_start, content_block_start, ping, first delta
    with pytest.raises(openai.APIConnectionError):
        for _ in fake_provider.openai_client().chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers):
            pass
    assert [r["fault"] for r in fake_provider.requests_for(key)] == ["stream-error"] * 2  # streams are not retried


def test_stream_error_event(fake_provider: FakeProvider) -> None:
    headers = {"x-fake-stream-error": "after=2;mode=error"}
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        for _ in fake_provider.anthropic_client().messages.create(
                model=CLAUDE, max_tokens=100, messages=MESSAGES, stream=True, extra_headers=headers):
            pass
    with pytest.raises(openai.APIError, match="server had an error"):
        for _ in fake_provider.openai_client().chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers):
            pass
    events = list(fake_provider.openai_client().responses.create(
        model="gpt-4o-mini", input="hi", stream=True, extra_headers=headers))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]


def test_stream_error_only_first_times(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-stream-error": "after=1", "x-fake-fail-times": "1"})
    client = fake_provider.openai_client()
    with pytest.raises(openai.APIConnectionError):
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                            extra_headers=headers))
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                 extra_headers=headers))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert [r["fault"] for r in fake_provider.requests_for(key)] == ["stream-error", None]


def test_delay_before_first_chunk(fake_provider: FakeProvider) -> None:
    headers = {"x-fake-delay-ms": "250"}
    started = time.monotonic()
    stream = fake_provider.openai_client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers)
    opened = time.monotonic() - started
    next(iter(stream))
    first = time.monotonic() - started
    stream.close()
    assert opened < 0.25 <= first  # headers come at once, the first chunk after the delay
    started = time.monotonic()
    fake_provider.anthropic_client().messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES,
                                                     extra_headers=headers)
    assert time.monotonic() - started >= 0.25


def test_fault_defaults(fake_provider: FakeProvider) -> None:
    key, headers = keyed(fake_provider, **{"x-fake-fail-times": "1"})  # no x-fake-fail: a 500
    client = fake_provider.anthropic_client(max_retries=0)
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES, extra_headers=headers)
    client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES, extra_headers=headers)
    stream_key, stream_headers = keyed(fake_provider, **{"x-fake-stream-error": "after=0"})
    client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES, extra_headers=stream_headers)
    assert [r["fault"] for r in fake_provider.requests_for(key) + fake_provider.requests_for(stream_key)] == [
        500, None, None]  # a stream error does not touch a request that does not stream
