"""Pure functions from anthropic request kwargs / responses / stream events to llmloop's fields.

Shape checks only (`getattr(..., None)`, `isinstance`); the core calls these behind one guard anyway.
Requests are read from the keyword arguments the app passed (the SDK methods are keyword-only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmloop.instrumentation.fields import get, given_check
from llmloop.instrumentation.invocation import Invocation, Request
from llmloop.instrumentation.streams import ChunkHandler
from llmloop.semconv import attributes as A

REQUEST_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("max_tokens", A.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", A.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", A.GEN_AI_REQUEST_TOP_P),
    ("top_k", A.GEN_AI_REQUEST_TOP_K),
    ("stop_sequences", A.GEN_AI_REQUEST_STOP_SEQUENCES),
)
"""Request kwarg -> span attribute."""

FINGERPRINT_PARAMS: tuple[str, ...] = (
    "max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "thinking", "tool_choice",
    "output_config", "output_format",
)
"""Request kwargs that define the config (fingerprint `params`)."""

NATIVE_KEYS = frozenset({A.GEN_AI_REQUEST_MAX_TOKENS, A.GEN_AI_REQUEST_STREAM, A.SERVER_ADDRESS, A.SERVER_PORT})
"""Request attributes the SDK's native span already has."""

PLATFORM_PROVIDERS: Mapping[str, str] = {
    "AnthropicBedrock": A.Provider.AWS_BEDROCK, "AsyncAnthropicBedrock": A.Provider.AWS_BEDROCK,
    "AnthropicVertex": A.Provider.GCP_VERTEX_AI, "AsyncAnthropicVertex": A.Provider.GCP_VERTEX_AI,
}
"""Client class -> `gen_ai.provider.name` for platform clients (default `anthropic`)."""

OUTPUT_FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_call", "refusal": "content_filter",
}
"""Anthropic stop reason -> output-message schema `finish_reason` (the span attribute keeps the raw value)."""

given = given_check("anthropic")
_get = get


def provider_of(client: Any) -> str:
    return PLATFORM_PROVIDERS.get(type(client).__name__, A.Provider.ANTHROPIC)


def server_attributes(client: Any) -> dict[str, Any]:
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    if not host:
        return {}
    port = getattr(url, "port", None) or (80 if getattr(url, "scheme", "https") == "http" else 443)
    return {A.SERVER_ADDRESS: host, A.SERVER_PORT: port}


def system_parts(system: Any) -> list[str]:
    if isinstance(system, str):
        return [system]
    if isinstance(system, (list, tuple)):
        return [t for t in (_get(block, "text") for block in system) if isinstance(t, str)]
    return []


def _part(block: Any) -> dict[str, Any]:
    kind = _get(block, "type")
    if kind == "text":
        return {"type": "text", "content": _get(block, "text")}
    if kind in ("tool_use", "server_tool_use"):
        return {"type": "tool_call", "id": _get(block, "id"), "name": _get(block, "name"),
                "arguments": _get(block, "input")}
    if kind == "tool_result":
        return {"type": "tool_call_response", "id": _get(block, "tool_use_id"), "response": _get(block, "content")}
    if kind in ("thinking", "redacted_thinking"):
        return {"type": "reasoning", "content": _get(block, "thinking")}
    return {"type": str(kind)}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, (list, tuple)):
        return [_part(block) for block in content]
    return []


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    if not isinstance(tools, (list, tuple)):
        return None
    out = []
    for tool in tools:
        definition = {"type": _get(tool, "type") or "function", "name": _get(tool, "name")}
        if _get(tool, "description") is not None:
            definition["description"] = _get(tool, "description")
        if _get(tool, "input_schema") is not None:
            definition["parameters"] = _get(tool, "input_schema")
        out.append(definition)
    return out


def request(client: Any, kwargs: Mapping[str, Any], *, stream: bool = False) -> Request:
    """The `Request` of a `messages.create` / `messages.stream` call."""
    model = kwargs.get("model")
    attrs: dict[str, Any] = server_attributes(client)
    for key, attribute in REQUEST_ATTRIBUTES:
        value = kwargs.get(key)
        if given(value):
            attrs[attribute] = list(value) if isinstance(value, (list, tuple)) else value
    streaming = stream or kwargs.get("stream") is True
    if streaming:
        attrs[A.GEN_AI_REQUEST_STREAM] = True
    system = kwargs.get("system")
    tools = kwargs.get("tools")
    tools = tools if given(tools) else None
    params = {key: kwargs[key] for key in FINGERPRINT_PARAMS if key in kwargs and given(kwargs[key])}

    def content() -> dict[str, Any]:
        messages = kwargs.get("messages")
        return {
            A.GEN_AI_SYSTEM_INSTRUCTIONS: [{"type": "text", "content": t} for t in system_parts(system)] or None,
            A.GEN_AI_INPUT_MESSAGES: [{"role": _get(m, "role"), "parts": _parts(_get(m, "content"))}
                                      for m in messages] if isinstance(messages, (list, tuple)) else None,
            A.GEN_AI_TOOL_DEFINITIONS: tool_definitions(tools),
        }

    return Request(
        provider=provider_of(client), operation=A.Operation.CHAT, model=model if isinstance(model, str) else None,
        attributes=attrs, system=system_parts(system) if given(system) else [], params=params,
        tools=list(tools) if isinstance(tools, (list, tuple)) else None, stream=streaming, content=content,
        native_keys=NATIVE_KEYS,
    )


def _tokens(usage: Any, key: str) -> int | None:
    value = _get(usage, key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def record_usage(inv: Invocation, usage: Any) -> None:
    """Usage (a `Usage` or cumulative `MessageDeltaUsage`) into the invocation; input includes cache tokens."""
    if usage is None:
        return
    read = _tokens(usage, "cache_read_input_tokens")
    write = _tokens(usage, "cache_creation_input_tokens")
    if read is not None:
        inv.cache_read_tokens = read
    if write is not None:
        inv.cache_write_tokens = write
    uncached = _tokens(usage, "input_tokens")
    if uncached is not None:
        inv.input_tokens = uncached + (inv.cache_read_tokens or 0) + (inv.cache_write_tokens or 0)
    output = _tokens(usage, "output_tokens")
    if output is not None:
        inv.output_tokens = output
    reasoning = _tokens(_get(usage, "output_tokens_details"), "thinking_tokens")
    if reasoning is not None:
        inv.reasoning_tokens = reasoning


def output_message(content: Any, stop_reason: Any) -> list[dict[str, Any]]:
    message: dict[str, Any] = {"role": "assistant", "parts": _parts(content)}
    if isinstance(stop_reason, str):
        message["finish_reason"] = OUTPUT_FINISH_REASONS.get(stop_reason, stop_reason)
    return [message]


def record_message(inv: Invocation, message: Any) -> None:
    """A complete `Message` (or its decoded JSON) into the invocation."""
    if message is None:
        return
    response_id = _get(message, "id")
    if isinstance(response_id, str):
        inv.response_id = response_id
    model = _get(message, "model")
    if isinstance(model, str):
        inv.response_model = model
    stop_reason = _get(message, "stop_reason")
    if isinstance(stop_reason, str):
        inv.finish_reasons = [stop_reason]
    record_usage(inv, _get(message, "usage"))
    content = _get(message, "content")
    if isinstance(content, (list, tuple)):
        for block in content:
            if _get(block, "type") in ("tool_use", "server_tool_use"):
                inv.add_tool_call(_get(block, "id"), _get(block, "name"))
        if inv.telemetry.capture.any:
            inv.output_messages = output_message(content, stop_reason)


def error_type(error: BaseException) -> str | None:
    """`error.type` as the SDK's native tracing gives it: the API's error type, else the status code."""
    name = type(error).__name__
    if name == "APITimeoutError" or "Timeout" in name:
        return "client_timeout_error"
    if name == "APIConnectionError":
        return "connection_error"
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        kind = getattr(error, "type", None)
        return str(kind) if kind else str(status)
    return None


class MessageEventHandler(ChunkHandler):
    """Per-event bookkeeping of a streamed Message: constant time per event, content only when captured."""

    __slots__ = ("blocks", "capture", "first", "stop_reason")

    def __init__(self, inv: Invocation) -> None:
        super().__init__(inv)
        self.first = True
        self.stop_reason: str | None = None
        self.capture = inv.telemetry.capture.any
        self.blocks: list[dict[str, Any]] | None = [] if self.capture else None

    def chunk(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            if self.first:
                self.first = False
                self.inv.mark_first_chunk()
            if self.blocks:
                delta = event.delta
                text = getattr(delta, "text", None)
                if text is None:
                    text = getattr(delta, "thinking", None) or getattr(delta, "partial_json", None)
                if isinstance(text, str):
                    self.blocks[-1]["chunks"].append(text)
        elif kind == "content_block_start":
            block = event.content_block
            block_type = getattr(block, "type", None)
            if block_type in ("tool_use", "server_tool_use"):
                self.inv.add_tool_call(getattr(block, "id", None), getattr(block, "name", None))
            if self.blocks is not None:
                self.blocks.append({"block": block, "chunks": []})
        elif kind == "message_start":
            message = event.message
            inv = self.inv
            inv.response_id = getattr(message, "id", None)
            inv.response_model = getattr(message, "model", None)
            record_usage(inv, getattr(message, "usage", None))
        elif kind == "message_delta":
            reason = getattr(event.delta, "stop_reason", None)
            if isinstance(reason, str):
                self.stop_reason = reason
            record_usage(self.inv, getattr(event, "usage", None))
        return False

    def end(self) -> None:
        inv = self.inv
        if self.stop_reason is not None:
            inv.finish_reasons = [self.stop_reason]
        if self.blocks is not None:
            parts = []
            for entry in self.blocks:
                part = _part(entry["block"])
                if entry["chunks"]:
                    text = "".join(entry["chunks"])
                    if part["type"] == "tool_call":
                        part["arguments"] = text
                    else:
                        part["content"] = text
                parts.append(part)
            message: dict[str, Any] = {"role": "assistant", "parts": parts}
            if self.stop_reason is not None:
                message["finish_reason"] = OUTPUT_FINISH_REASONS.get(self.stop_reason, self.stop_reason)
            inv.output_messages = [message]

    def error_type(self, error: BaseException) -> str | None:
        return error_type(error)
