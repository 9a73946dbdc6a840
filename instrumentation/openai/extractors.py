"""Pure functions from openai request kwargs / responses / stream chunks to llmloop's fields.

Chat completions, Responses and embeddings. Shape checks only; the core calls these behind one guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmloop.instrumentation.fields import get, given_check
from llmloop.instrumentation.invocation import Invocation, Request
from llmloop.instrumentation.streams import ChunkHandler
from llmloop.semconv import attributes as A

CHAT_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("max_tokens", A.GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", A.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", A.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", A.GEN_AI_REQUEST_TOP_P),
    ("frequency_penalty", A.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", A.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", A.GEN_AI_REQUEST_SEED),
    ("reasoning_effort", A.GEN_AI_REQUEST_REASONING_LEVEL),
    ("service_tier", A.OPENAI_REQUEST_SERVICE_TIER),
)
"""Chat kwarg -> span attribute (`stop`, `n` and `response_format` are handled apart)."""

CHAT_FINGERPRINT_PARAMS: tuple[str, ...] = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "frequency_penalty", "presence_penalty",
    "stop", "seed", "n", "response_format", "reasoning_effort", "tool_choice", "parallel_tool_calls",
    "logit_bias", "logprobs", "top_logprobs", "verbosity", "modalities", "audio",
)
"""Chat kwargs that define the config (fingerprint `params`)."""

RESPONSES_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("max_output_tokens", A.GEN_AI_REQUEST_MAX_TOKENS),
    ("temperature", A.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", A.GEN_AI_REQUEST_TOP_P),
    ("service_tier", A.OPENAI_REQUEST_SERVICE_TIER),
)

RESPONSES_FINGERPRINT_PARAMS: tuple[str, ...] = (
    "temperature", "top_p", "max_output_tokens", "reasoning", "text", "tool_choice", "parallel_tool_calls",
    "truncation", "max_tool_calls", "top_logprobs", "include",
)

EMBEDDINGS_FINGERPRINT_PARAMS: tuple[str, ...] = ("dimensions", "encoding_format")

HOST_PROVIDERS: Mapping[str, str] = {
    "api.deepseek.com": "deepseek", "api.groq.com": "groq", "api.x.ai": "x_ai", "api.mistral.ai": "mistral_ai",
    "api.perplexity.ai": "perplexity", "api.moonshot.ai": "moonshot_ai",
    "generativelanguage.googleapis.com": "gcp.gemini",
}
"""OpenAI-compatible API hosts -> `gen_ai.provider.name` (anything else is `openai`)."""

given = given_check("openai")
_get = get


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def provider_of(client: Any) -> str:
    if type(client).__name__ in ("AzureOpenAI", "AsyncAzureOpenAI"):
        return A.Provider.AZURE_OPENAI
    host = getattr(getattr(client, "base_url", None), "host", None) or ""
    if host.endswith((".openai.azure.com", ".services.ai.azure.com")):
        return A.Provider.AZURE_OPENAI
    return HOST_PROVIDERS.get(host, A.Provider.OPENAI)


def server_attributes(client: Any) -> dict[str, Any]:
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    if not host:
        return {}
    port = getattr(url, "port", None) or (80 if getattr(url, "scheme", "https") == "http" else 443)
    return {A.SERVER_ADDRESS: host, A.SERVER_PORT: port}


def _text_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, (list, tuple)):
        return [t for t in (_get(p, "text") for p in content) if isinstance(t, str)]
    return []


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, (list, tuple)):
        out = []
        for part in content:
            kind = _get(part, "type")
            text = _get(part, "text")
            out.append({"type": "text", "content": text} if isinstance(text, str) else {"type": str(kind)})
        return out
    return []


def _chat_message(message: Any) -> dict[str, Any]:
    role = _get(message, "role")
    parts = _parts(_get(message, "content"))
    for call in _get(message, "tool_calls") or ():
        function = _get(call, "function")
        parts.append({"type": "tool_call", "id": _get(call, "id"), "name": _get(function, "name"),
                      "arguments": _get(function, "arguments")})
    if role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": _get(message, "tool_call_id"),
                                           "response": _get(message, "content")}]}
    return {"role": role, "parts": parts}


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    if not isinstance(tools, (list, tuple)):
        return None
    out = []
    for tool in tools:
        function = _get(tool, "function")
        source = function if function is not None else tool
        definition = {"type": _get(tool, "type") or "function", "name": _get(source, "name")}
        for key in ("description", "parameters"):
            if _get(source, key) is not None:
                definition[key] = _get(source, key)
        out.append(definition)
    return out


def _base(client: Any, kwargs: Mapping[str, Any], table: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    attrs = server_attributes(client)
    for key, attribute in table:
        value = kwargs.get(key)
        if given(value) and not isinstance(value, (dict, list)):
            attrs[attribute] = value
    if kwargs.get("stream") is True:
        attrs[A.GEN_AI_REQUEST_STREAM] = True
    return attrs


def _output_type(response_format: Any) -> str | None:
    kind = _get(response_format, "type") if given(response_format) else None
    if kind in ("json_object", "json_schema"):
        return "json"
    if kind == "text":
        return "text"
    return "json" if isinstance(response_format, type) else None


def chat_request(client: Any, kwargs: Mapping[str, Any]) -> Request:
    """The `Request` of a `chat.completions.create` call."""
    attrs = _base(client, kwargs, CHAT_ATTRIBUTES)
    stop = kwargs.get("stop")
    if given(stop):
        attrs[A.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop] if isinstance(stop, str) else list(stop)
    n = kwargs.get("n")
    if given(n) and n != 1:
        attrs[A.GEN_AI_REQUEST_CHOICE_COUNT] = n
    output_type = _output_type(kwargs.get("response_format"))
    if output_type:
        attrs[A.GEN_AI_OUTPUT_TYPE] = output_type
    messages = kwargs.get("messages")
    messages = messages if isinstance(messages, (list, tuple)) else ()
    system = [t for m in messages if _get(m, "role") in ("system", "developer") for t in _text_of(_get(m, "content"))]
    tools = kwargs.get("tools")
    tools = list(tools) if given(tools) and isinstance(tools, (list, tuple)) else None
    model = kwargs.get("model")

    def content() -> dict[str, Any]:
        return {
            A.GEN_AI_SYSTEM_INSTRUCTIONS: [{"type": "text", "content": t} for t in system] or None,
            A.GEN_AI_INPUT_MESSAGES: [_chat_message(m) for m in messages
                                      if _get(m, "role") not in ("system", "developer")],
            A.GEN_AI_TOOL_DEFINITIONS: tool_definitions(tools),
        }

    return Request(provider=provider_of(client), operation=A.Operation.CHAT,
                   model=model if isinstance(model, str) else None, attributes=attrs, system=system,
                   params={k: kwargs[k] for k in CHAT_FINGERPRINT_PARAMS if k in kwargs and given(kwargs[k])},
                   tools=tools, stream=kwargs.get("stream") is True, content=content)


def responses_request(client: Any, kwargs: Mapping[str, Any]) -> Request:
    """The `Request` of a `responses.create` call."""
    attrs = _base(client, kwargs, RESPONSES_ATTRIBUTES)
    effort = _get(kwargs.get("reasoning"), "effort") if given(kwargs.get("reasoning")) else None
    if isinstance(effort, str):
        attrs[A.GEN_AI_REQUEST_REASONING_LEVEL] = effort
    output_type = _output_type(_get(kwargs.get("text"), "format") if given(kwargs.get("text")) else None)
    if output_type:
        attrs[A.GEN_AI_OUTPUT_TYPE] = output_type
    instructions = kwargs.get("instructions")
    items = kwargs.get("input")
    items_list = items if isinstance(items, (list, tuple)) else ()
    system = [instructions] if isinstance(instructions, str) else []
    system += [t for m in items_list if _get(m, "role") in ("system", "developer")
               for t in _text_of(_get(m, "content"))]
    tools = kwargs.get("tools")
    tools = list(tools) if given(tools) and isinstance(tools, (list, tuple)) else None
    model = kwargs.get("model")

    def content() -> dict[str, Any]:
        if isinstance(items, str):
            messages = [{"role": "user", "parts": [{"type": "text", "content": items}]}]
        else:
            messages = [{"role": _get(m, "role") or _get(m, "type"), "parts": _parts(_get(m, "content"))}
                        for m in items_list if _get(m, "role") not in ("system", "developer")]
        return {
            A.GEN_AI_SYSTEM_INSTRUCTIONS: [{"type": "text", "content": t} for t in system] or None,
            A.GEN_AI_INPUT_MESSAGES: messages,
            A.GEN_AI_TOOL_DEFINITIONS: tool_definitions(tools),
        }

    return Request(provider=provider_of(client), operation=A.Operation.CHAT,
                   model=model if isinstance(model, str) else None, attributes=attrs, system=system,
                   params={k: kwargs[k] for k in RESPONSES_FINGERPRINT_PARAMS if k in kwargs and given(kwargs[k])},
                   tools=tools, stream=kwargs.get("stream") is True, content=content)


def embeddings_request(client: Any, kwargs: Mapping[str, Any]) -> Request:
    """The `Request` of an `embeddings.create` call."""
    attrs = server_attributes(client)
    dimensions = kwargs.get("dimensions")
    if given(dimensions):
        attrs[A.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = dimensions
    encoding = kwargs.get("encoding_format")
    if given(encoding):
        attrs[A.GEN_AI_REQUEST_ENCODING_FORMATS] = [encoding]
    model = kwargs.get("model")
    return Request(provider=provider_of(client), operation=A.Operation.EMBEDDINGS,
                   model=model if isinstance(model, str) else None, attributes=attrs,
                   params={k: kwargs[k] for k in EMBEDDINGS_FINGERPRINT_PARAMS if k in kwargs and given(kwargs[k])})


# --- responses ----------------------------------------------------------------------------------------

def record_chat_usage(inv: Invocation, usage: Any) -> None:
    if usage is None:
        return
    inv.input_tokens = _int(_get(usage, "prompt_tokens"))
    inv.output_tokens = _int(_get(usage, "completion_tokens"))
    details = _get(usage, "prompt_tokens_details")
    inv.cache_read_tokens = _int(_get(details, "cached_tokens"))
    inv.cache_write_tokens = _int(_get(details, "cache_write_tokens"))
    inv.reasoning_tokens = _int(_get(_get(usage, "completion_tokens_details"), "reasoning_tokens"))


def _record_common(inv: Invocation, response: Any) -> None:
    response_id = _get(response, "id")
    if isinstance(response_id, str):
        inv.response_id = response_id
    model = _get(response, "model")
    if isinstance(model, str):
        inv.response_model = model
    tier = _get(response, "service_tier")
    if isinstance(tier, str):
        inv.extra[A.OPENAI_RESPONSE_SERVICE_TIER] = tier
    fingerprint = _get(response, "system_fingerprint")
    if isinstance(fingerprint, str):
        inv.extra[A.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = fingerprint


def record_chat(inv: Invocation, completion: Any) -> None:
    """A `ChatCompletion` into the invocation."""
    _record_common(inv, completion)
    record_chat_usage(inv, _get(completion, "usage"))
    reasons, outputs = [], []
    for choice in _get(completion, "choices") or ():
        reason = _get(choice, "finish_reason")
        reasons.append(reason if isinstance(reason, str) else "")
        message = _get(choice, "message")
        for call in _get(message, "tool_calls") or ():
            inv.add_tool_call(_get(call, "id"), _get(_get(call, "function"), "name"))
        if inv.telemetry.capture.any:
            output = _chat_message(message)
            output["role"] = "assistant"
            output["finish_reason"] = reason
            outputs.append(output)
    if reasons:
        inv.finish_reasons = reasons
    if outputs:
        inv.output_messages = outputs


def record_response(inv: Invocation, response: Any) -> None:
    """A Responses-API `Response` into the invocation."""
    _record_common(inv, response)
    usage = _get(response, "usage")
    if usage is not None:
        inv.input_tokens = _int(_get(usage, "input_tokens"))
        inv.output_tokens = _int(_get(usage, "output_tokens"))
        details = _get(usage, "input_tokens_details")
        inv.cache_read_tokens = _int(_get(details, "cached_tokens"))
        inv.cache_write_tokens = _int(_get(details, "cache_write_tokens"))
        inv.reasoning_tokens = _int(_get(_get(usage, "output_tokens_details"), "reasoning_tokens"))
    parts: list[dict[str, Any]] = []
    calls = False
    capture = inv.telemetry.capture.any
    for item in _get(response, "output") or ():
        kind = _get(item, "type")
        if kind == "function_call":
            calls = True
            inv.add_tool_call(_get(item, "call_id"), _get(item, "name"))
            if capture:
                parts.append({"type": "tool_call", "id": _get(item, "call_id"), "name": _get(item, "name"),
                              "arguments": _get(item, "arguments")})
        elif kind == "message" and capture:
            parts.extend({"type": "text", "content": _get(c, "text")} for c in _get(item, "content") or ()
                         if isinstance(_get(c, "text"), str))
    status = _get(response, "status")
    reason = None
    if status == "completed":
        reason = "tool_calls" if calls else "stop"
    elif status == "incomplete":
        detail = _get(_get(response, "incomplete_details"), "reason")
        reason = "length" if detail == "max_output_tokens" else (detail or "incomplete")
    elif isinstance(status, str):
        reason = status
    if reason:
        inv.finish_reasons = [reason]
    if capture:
        inv.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


def record_embeddings(inv: Invocation, response: Any) -> None:
    model = _get(response, "model")
    if isinstance(model, str):
        inv.response_model = model
    inv.input_tokens = _int(_get(_get(response, "usage"), "prompt_tokens"))


def error_type(error: BaseException) -> str | None:
    """`error.type` for an openai SDK error: the API error type, else the status code."""
    name = type(error).__name__
    if name == "APITimeoutError":
        return "client_timeout_error"
    if name == "APIConnectionError":
        return "connection_error"
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        kind = getattr(error, "type", None) or getattr(error, "code", None)
        return str(kind) if isinstance(kind, str) and kind else str(status)
    return None


# --- streams ------------------------------------------------------------------------------------------

class ChatChunkHandler(ChunkHandler):
    """Per-chunk bookkeeping of a streamed chat completion; hides the usage chunk llmloop asked for."""

    __slots__ = ("capture", "first", "hide_usage", "reasons", "started", "texts")

    def __init__(self, inv: Invocation, hide_usage: bool = False) -> None:
        super().__init__(inv)
        self.hide_usage = hide_usage
        self.first = True
        self.started = False
        self.reasons: dict[int, str] = {}
        self.capture = inv.telemetry.capture.any
        self.texts: dict[int, list[str]] | None = {} if self.capture else None

    def chunk(self, chunk: Any) -> bool:
        if not self.started and chunk.id:  # Azure's first chunk (prompt filter results) has an empty id
            self.started = True
            _record_common(self.inv, chunk)
        usage = chunk.usage
        choices = chunk.choices
        if usage is not None:
            record_chat_usage(self.inv, usage)
            if self.hide_usage and not choices:
                return True
        elif self.hide_usage:
            chunk.__pydantic_fields_set__.discard("usage")
        for choice in choices:
            delta = choice.delta
            if delta is not None:
                if self.first and (delta.content or delta.tool_calls or delta.refusal):
                    self.first = False
                    self.inv.mark_first_chunk()
                calls = delta.tool_calls
                if calls:
                    for call in calls:
                        if call.id:
                            self.inv.add_tool_call(call.id, getattr(call.function, "name", None))
                if self.texts is not None and delta.content:
                    self.texts.setdefault(choice.index, []).append(delta.content)
            if choice.finish_reason:
                self.reasons[choice.index] = choice.finish_reason
        return False

    def end(self) -> None:
        if self.reasons:
            self.inv.finish_reasons = [self.reasons[i] for i in sorted(self.reasons)]
        if self.texts is not None:
            indexes = sorted(set(self.texts) | set(self.reasons))
            self.inv.output_messages = [
                {"role": "assistant", "parts": [{"type": "text", "content": "".join(self.texts.get(i, ()))}],
                 "finish_reason": self.reasons.get(i)} for i in indexes]

    def error_type(self, error: BaseException) -> str | None:
        return error_type(error)


class ResponseEventHandler(ChunkHandler):
    """Per-event bookkeeping of a streamed Responses-API call; the final event carries the whole response."""

    __slots__ = ("first",)

    def __init__(self, inv: Invocation) -> None:
        super().__init__(inv)
        self.first = True

    def chunk(self, event: Any) -> bool:
        kind = getattr(event, "type", None)
        if self.first and kind is not None and kind.endswith(".delta"):
            self.first = False
            self.inv.mark_first_chunk()
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            record_response(self.inv, event.response)
        elif kind == "response.created":
            _record_common(self.inv, event.response)
        return False

    def error_type(self, error: BaseException) -> str | None:
        return error_type(error)
