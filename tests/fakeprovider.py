"""A local fake of the Anthropic and OpenAI HTTP APIs for testing against the real SDKs.

`FakeProvider` runs a Starlette app under uvicorn in a background thread on 127.0.0.1 and answers:

- Anthropic `POST /v1/messages` (JSON and SSE) and `POST /v1/messages/count_tokens`;
- OpenAI `POST /v1/chat/completions`, `POST /v1/responses` (JSON and SSE), `POST /v1/embeddings`;
- the same OpenAI endpoints under Azure paths (`/openai/deployments/{deployment}/...`, `/openai/...`,
  `/openai/v1/...`); any path ending in one of the endpoints above is served.

Replies are deterministic: the text is ``echo: <last user text>`` streamed word by word; a request with
tools (and a tool choice other than none) whose last turn is not a tool result gets one call of the first
(or the chosen) tool, with arguments made from its JSON schema; the model is echoed as a dated snapshot.

Every request is recorded in `FakeProvider.requests`. Request headers script the behaviour per request:

==========================  =============================================================================
``x-fake-key``              id that groups requests, for ``x-fake-fail-times`` and `requests_for`
``x-fake-fail``             respond with this status and the provider's error body (400, 429, 500, 529…)
``x-fake-fail-times``       apply the fault (``x-fake-fail``, default 500, or ``x-fake-stream-error``) only
                            to the first N requests with the same ``x-fake-key`` (else the same body)
``x-fake-stream-error``     ``after=N[;mode=close|error]``: after N SSE events close the connection
                            (default) or send the provider's in-stream error event and end the stream
``x-fake-delay-ms``         wait before the response (non-stream) or before the first SSE event
``x-fake-chunk-delay-ms``   wait between SSE events
``x-fake-usage``            ``input=10,output=5,cache_read=3,cache_creation=2,reasoning=4``: usage numbers,
                            copied as they are into the provider's fields (OpenAI: prompt_tokens,
                            completion_tokens, cached_tokens, reasoning_tokens; Anthropic: input_tokens,
                            output_tokens, cache_read_input_tokens, cache_creation_input_tokens);
                            Anthropic only: ``cache_creation_1h=N`` reports N of the cache_creation tokens
                            as 1-hour writes in ``usage.cache_creation`` (the rest as 5-minute writes)
``x-fake-text``             reply with this text instead of the echo
``x-fake-model``            report this response model instead of the snapshot
``x-fake-retry-after``      ``retry-after`` value on errors (default: ``retry-after: 0`` and ``retry-after-ms: 1``)
==========================  =============================================================================
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import socket
import string
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

if TYPE_CHECKING:
    import anthropic
    import openai

__all__ = ["ANTHROPIC_SNAPSHOTS", "OPENAI_SNAPSHOTS", "FakeProvider", "fake_provider"]

ANTHROPIC_SNAPSHOTS: dict[str, str] = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-0": "claude-opus-4-20250514",
    "claude-opus-4": "claude-opus-4-20250514",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}
"""Anthropic aliases and the dated snapshots the fake reports for them."""

OPENAI_SNAPSHOTS: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "o3": "o3-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o4-mini": "o4-mini-2025-04-16",
}
"""OpenAI aliases and the dated snapshots the fake reports for them (embedding models are echoed as is)."""

ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "fake invalid request"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed the rate limit for your organization."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {  # status: (type, code, message)
    400: ("invalid_request_error", None, "fake invalid request"),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}

_ALPHANUMERIC = string.ascii_letters + string.digits


def _rid(prefix: str, length: int = 24) -> str:
    """A random id such as the providers hand out: `prefix` and `length` letters and digits."""
    return prefix + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def snapshot(model: str, provider: str) -> str:
    """The dated snapshot name the provider reports for `model` (unknown names are echoed)."""
    table = ANTHROPIC_SNAPSHOTS if provider == "anthropic" else OPENAI_SNAPSHOTS
    return table.get(model, model)


class _AbortStream(Exception):
    """Raised inside an SSE body to make uvicorn drop the connection mid-response."""


def _is_abort(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, _AbortStream):
            return True
        if isinstance(inner := getattr(exc, "exceptions", None), (list, tuple)):  # an exception group
            return any(_is_abort(e) for e in inner)
        exc = exc.__cause__ or exc.__context__
    return False


class _QuietAborts(logging.Filter):
    """Drop uvicorn's 'Exception in ASGI application' records for deliberately aborted streams."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and _is_abort(record.exc_info[1]))


_QUIET_ABORTS = _QuietAborts()


@dataclass
class Controls:
    """The `x-fake-*` request headers, parsed."""

    key: str | None = None
    fail_status: int | None = None
    fail_times: int | None = None
    stream_error_after: int | None = None
    stream_error_mode: str = "close"
    delay_ms: int = 0
    chunk_delay_ms: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    text: str | None = None
    model: str | None = None
    retry_after: str | None = None

    @classmethod
    def from_headers(cls, headers: Any) -> Controls:
        controls = cls(key=headers.get("x-fake-key"), text=headers.get("x-fake-text"),
                       model=headers.get("x-fake-model"), retry_after=headers.get("x-fake-retry-after"))
        if value := headers.get("x-fake-fail"):
            controls.fail_status = int(value)
        if value := headers.get("x-fake-fail-times"):
            controls.fail_times = int(value)
        controls.delay_ms = int(headers.get("x-fake-delay-ms", "0"))
        controls.chunk_delay_ms = int(headers.get("x-fake-chunk-delay-ms", "0"))
        if value := headers.get("x-fake-stream-error"):
            options = dict(part.strip().split("=", 1) for part in re.split("[;,]", value) if "=" in part)
            controls.stream_error_after = int(options.get("after", "0"))
            controls.stream_error_mode = options.get("mode", "close")
        if value := headers.get("x-fake-usage"):
            controls.usage = {name.strip(): int(number) for name, number in
                              (part.split("=", 1) for part in value.split(",") if "=" in part)}
        return controls


@dataclass
class Reply:
    """What the fake model says for one request."""

    text: str
    chunks: list[str]
    tool: dict[str, Any] | None  # {"name": ..., "arguments": "<json>"} when the reply is a tool call
    truncated: bool
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_creation: int
    reasoning: int
    thinking: list[str] | None = None
    cache_creation_1h: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Reading requests


def _text_of(content: Any) -> str:
    """The text in a message's content: a string, or a list of blocks/parts of any provider."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                if isinstance(block.get("text"), str):
                    parts.append(block["text"])
                elif block.get("type") == "tool_result":
                    parts.append(_text_of(block.get("content")))
        return " ".join(part for part in parts if part)
    return ""


def _all_text(body: dict[str, Any]) -> str:
    pieces = [_text_of(body.get("system")), _text_of(body.get("instructions"))]
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        items = [{"content": items}]
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            pieces.append(_text_of(item.get("content")))
            pieces.append(str(item.get("output") or ""))
    return " ".join(piece for piece in pieces if piece)


def _last_user_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output":
            return f"tool result: {item.get('output', '')}"
        if item.get("role") == "tool":
            return f"tool result: {_text_of(item.get('content'))}"
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                                 for b in content):
                return f"tool result: {_text_of(content)}"
            return _text_of(content)
    return ""


def _last_turn_is_tool_result(items: Any) -> bool:
    if not isinstance(items, list) or not items or not isinstance(items[-1], dict):
        return False
    last = items[-1]
    if last.get("type") == "function_call_output" or last.get("role") == "tool":
        return True
    content = last.get("content")
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def _example(schema: Any) -> Any:
    """A value that fits a (simple) JSON schema."""
    if not isinstance(schema, dict):
        return "test"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        return {name: _example(sub) for name, sub in (schema.get("properties") or {}).items()}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(kind, "test")


def _pick_tool(tools: Any, choice: Any) -> dict[str, Any] | None:
    """The (name, schema) of the tool to call: the chosen one, else the first function tool; None for none."""
    functions = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if isinstance(tool.get("function"), dict):  # OpenAI chat
            functions.append((tool["function"].get("name"), tool["function"].get("parameters")))
        elif tool.get("type") in (None, "custom", "function") and tool.get("name"):  # Anthropic, Responses
            functions.append((tool["name"], tool.get("input_schema") or tool.get("parameters")))
    if not functions:
        return None
    if choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    wanted = None
    if isinstance(choice, dict):
        wanted = choice.get("name") or (choice.get("function") or {}).get("name")
    name, schema = next(((n, s) for n, s in functions if n == wanted), functions[0])
    return {"name": name, "arguments": _dumps(_example(schema or {"type": "object"}))}


def _words(text: str) -> list[str]:
    """`text` in stream chunks: words, each after the first with its leading space."""
    words = text.split(" ")
    return [words[0]] + [" " + word for word in words[1:]]


def _pieces(text: str, count: int = 3) -> list[str]:
    size = max(1, -(-len(text) // count))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _reply(body: dict[str, Any], controls: Controls, *, items: Any, tools: Any, tool_choice: Any,
           max_tokens: Any, thinking: bool = False) -> Reply:
    last = _last_user_text(items)
    tool = None if _last_turn_is_tool_result(items) else _pick_tool(tools, tool_choice)
    text = controls.text if controls.text is not None else f"echo: {last}"
    chunks = _words(text)
    truncated = isinstance(max_tokens, int) and 0 < max_tokens < len(chunks) and tool is None
    if truncated:
        chunks = chunks[:max_tokens]
    thoughts = _words(f"Thinking about: {last}") if thinking else None
    usage = controls.usage
    output = len(chunks) if tool is None else max(1, len(tool["arguments"]) // 4)
    output += len(thoughts or [])
    return Reply(text="".join(chunks), chunks=chunks, tool=tool, truncated=truncated,
                 input_tokens=usage.get("input", max(1, len(_all_text(body).split()))),
                 output_tokens=usage.get("output", output + usage.get("reasoning", 0)),
                 cache_read=usage.get("cache_read", 0), cache_creation=usage.get("cache_creation", 0),
                 reasoning=usage.get("reasoning", 0), thinking=thoughts,
                 cache_creation_1h=usage.get("cache_creation_1h", 0))


# ---------------------------------------------------------------------------------------------------------------
# The server


class FakeProvider:
    """A fake Anthropic/OpenAI/Azure OpenAI HTTP server on 127.0.0.1 (see the module docstring).

    Use it as a context manager or call `start`/`stop`. `requests` holds one dict per request received:
    ``method``, ``path``, ``query`` (dict), ``headers`` (dict, lower-case names), ``json`` (the parsed body or
    None), ``key`` (``x-fake-key``), ``fault`` (None, or the injected status / ``"stream-error"``), ``time``.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._fault_counts: dict[str, int] = {}
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])])

    # -- lifecycle ------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeProvider:
        """Serve in a background thread; return once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, http="h11", ws="none", lifespan="off", log_config=None,
                                log_level="warning", access_log=False, timeout_graceful_shutdown=1)
        logging.getLogger("uvicorn.error").addFilter(_QUIET_ABORTS)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"fakeprovider-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake provider did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(5)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests ----------------------------------------------------------------------------------

    @staticmethod
    def new_key() -> str:
        """A fresh value for ``x-fake-key``."""
        return uuid.uuid4().hex

    def requests_for(self, key: str) -> list[dict[str, Any]]:
        """The recorded requests whose ``x-fake-key`` is `key`, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r["key"] == key]

    def clear(self) -> None:
        """Forget recorded requests and failure counters."""
        with self._lock:
            self.requests.clear()
            self._fault_counts.clear()

    def anthropic_client(self, **kw: Any) -> anthropic.Anthropic:
        """An `anthropic.Anthropic` pointed at this server (``api_key="test"``, 10 s timeout by default)."""
        import anthropic

        return anthropic.Anthropic(**self._client_kw(kw, base_url=self.base_url))

    def async_anthropic_client(self, **kw: Any) -> anthropic.AsyncAnthropic:
        """An `anthropic.AsyncAnthropic` pointed at this server."""
        import anthropic

        return anthropic.AsyncAnthropic(**self._client_kw(kw, base_url=self.base_url))

    def openai_client(self, **kw: Any) -> openai.OpenAI:
        """An `openai.OpenAI` pointed at this server's ``/v1``."""
        import openai

        return openai.OpenAI(**self._client_kw(kw, base_url=f"{self.base_url}/v1"))

    def async_openai_client(self, **kw: Any) -> openai.AsyncOpenAI:
        """An `openai.AsyncOpenAI` pointed at this server's ``/v1``."""
        import openai

        return openai.AsyncOpenAI(**self._client_kw(kw, base_url=f"{self.base_url}/v1"))

    def azure_openai_client(self, **kw: Any) -> openai.AzureOpenAI:
        """An `openai.AzureOpenAI` with this server as ``azure_endpoint`` (api_version 2024-10-21 by default)."""
        import openai

        kw.setdefault("azure_endpoint", self.base_url)
        kw.setdefault("api_version", "2024-10-21")
        return openai.AzureOpenAI(**self._client_kw(kw))

    def async_azure_openai_client(self, **kw: Any) -> openai.AsyncAzureOpenAI:
        """An `openai.AsyncAzureOpenAI` with this server as ``azure_endpoint``."""
        import openai

        kw.setdefault("azure_endpoint", self.base_url)
        kw.setdefault("api_version", "2024-10-21")
        return openai.AsyncAzureOpenAI(**self._client_kw(kw))

    @staticmethod
    def _client_kw(kw: dict[str, Any], **defaults: Any) -> dict[str, Any]:
        return {"api_key": "test", "timeout": 10.0, **defaults, **kw}

    # -- request handling -----------------------------------------------------------------------------------

    def _take_fault(self, controls: Controls, stream: bool, path: str, raw: bytes) -> bool:
        """Whether this request gets the scripted fault, counting it against ``x-fake-fail-times``."""
        if controls.fail_status is None and controls.stream_error_after is None and controls.fail_times is None:
            return False
        if controls.fail_status is None and controls.stream_error_after is not None and not stream:
            return False  # a stream error is no fault for a request that does not stream
        if controls.fail_times is None:
            return True
        key = controls.key or hashlib.sha256(path.encode() + b"\0" + raw).hexdigest()
        with self._lock:
            taken = self._fault_counts.get(key, 0)
            if taken >= controls.fail_times:
                return False
            self._fault_counts[key] = taken + 1
            return True

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        path = request.url.path
        provider = "anthropic" if re.search(r"/messages(/count_tokens)?$", path) else "openai"
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = {"method": request.method, "path": path, "query": dict(request.query_params),
                  "headers": dict(request.headers), "json": body, "key": request.headers.get("x-fake-key"),
                  "fault": None, "time": time.time()}
        with self._lock:
            self.requests.append(record)
        try:
            controls = Controls.from_headers(request.headers)
        except ValueError as err:
            return self._error(provider, 400, Controls(), f"bad x-fake-* header: {err}")

        stream = isinstance(body, dict) and body.get("stream") is True
        if not self._take_fault(controls, stream, path, raw):
            controls.stream_error_after = None
        elif controls.fail_status is None and controls.stream_error_after is not None:
            record["fault"] = "stream-error"
        else:
            record["fault"] = status = controls.fail_status or 500
            await self._sleep(controls.delay_ms)
            return self._error(provider, status, controls)

        if request.method != "POST":
            return self._error(provider, 404, controls, f"Invalid URL ({request.method} {path})", code=None)
        if not isinstance(body, dict):
            return self._error(provider, 400, controls, "request body is not a JSON object")
        if not stream:
            await self._sleep(controls.delay_ms)
        azure = path.startswith("/openai/")
        try:
            if path.endswith("/messages/count_tokens"):
                return JSONResponse({"input_tokens": max(1, len(_all_text(body).split()))})
            if path.endswith("/messages"):
                return self._anthropic_messages(body, controls, stream)
            if path.endswith("/chat/completions"):
                deployment = m.group(1) if (m := re.search(r"/deployments/([^/]+)/", path)) else None
                return self._chat_completions(body, controls, stream, azure, deployment)
            if path.endswith("/responses"):
                return self._responses(body, controls, stream)
            if path.endswith("/embeddings"):
                return self._embeddings(body, controls)
        except _BadRequest as err:
            return self._error(provider, 400, controls, str(err))
        return self._error(provider, 404, controls, f"Invalid URL (POST {path})", code=None)

    @staticmethod
    async def _sleep(ms: int) -> None:
        if ms > 0:
            await asyncio.sleep(ms / 1000)

    @staticmethod
    def _error(provider: str, status: int, controls: Controls, message: str | None = None,
               **override: Any) -> JSONResponse:
        """The provider's error response; `override` replaces fields of the OpenAI error object."""
        headers = {"retry-after": controls.retry_after} if controls.retry_after is not None else {
            "retry-after": "0", "retry-after-ms": "1"}
        if provider == "anthropic":
            kind, default = ANTHROPIC_ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error",
                                                          f"fake error {status}"))
            request_id = _rid("req_011C")
            headers["request-id"] = request_id
            content: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message or default},
                                       "request_id": request_id}
        else:
            kind, code, default = OPENAI_ERRORS.get(
                status, ("server_error" if status >= 500 else "invalid_request_error", None, f"fake error {status}"))
            headers["x-request-id"] = _rid("req_", 32)
            content = {"error": {"message": message or default, "type": kind, "param": None, "code": code, **override}}
        return JSONResponse(content, status_code=status, headers=headers)

    def _sse(self, events: list[str], controls: Controls, error_event: str) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for index, event in enumerate(events):
                await self._sleep(controls.delay_ms if index == 0 else controls.chunk_delay_ms)
                if controls.stream_error_after is not None and index >= controls.stream_error_after:
                    if controls.stream_error_mode == "error":
                        yield error_event.encode()
                        return
                    raise _AbortStream(f"stream aborted after {index} events")
                yield event.encode()

        return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8",
                                 headers={"cache-control": "no-cache"})

    # -- Anthropic ------------------------------------------------------------------------------------------

    def _anthropic_messages(self, body: dict[str, Any], controls: Controls, stream: bool) -> Response:
        for name, kind in (("model", str), ("max_tokens", int), ("messages", list)):
            if not isinstance(body.get(name), kind):
                raise _BadRequest(f"{name}: Field required")
        thinking = isinstance(body.get("thinking"), dict) and body["thinking"].get("type") in ("enabled", "adaptive")
        reply = _reply(body, controls, items=body["messages"], tools=body.get("tools"),
                       tool_choice=body.get("tool_choice"), max_tokens=body["max_tokens"], thinking=thinking)
        model = controls.model or snapshot(body["model"], "anthropic")
        stop_reason = "tool_use" if reply.tool else "max_tokens" if reply.truncated else "end_turn"
        blocks: list[dict[str, Any]] = []
        if reply.thinking:
            blocks.append({"type": "thinking", "thinking": "".join(reply.thinking),
                           "signature": "ZmFrZS1zaWduYXR1cmU="})
        tool_id = _rid("toolu_01")
        if reply.tool:
            blocks.append({"type": "tool_use", "id": tool_id, "name": reply.tool["name"],
                           "input": json.loads(reply.tool["arguments"])})
        else:
            blocks.append({"type": "text", "text": reply.text})
        usage = {"input_tokens": reply.input_tokens, "cache_creation_input_tokens": reply.cache_creation,
                 "cache_read_input_tokens": reply.cache_read,
                 "cache_creation": {"ephemeral_5m_input_tokens": reply.cache_creation - reply.cache_creation_1h,
                                    "ephemeral_1h_input_tokens": reply.cache_creation_1h},
                 "output_tokens": reply.output_tokens, "service_tier": "standard"}
        message = {"id": _rid("msg_01"), "type": "message", "role": "assistant", "model": model, "content": blocks,
                   "stop_reason": stop_reason, "stop_sequence": None, "usage": usage}
        headers = {"request-id": _rid("req_011C"), "anthropic-ratelimit-requests-remaining": "999"}
        if not stream:
            return JSONResponse(message, headers=headers)

        def sse(kind: str, data: dict[str, Any]) -> str:
            return f"event: {kind}\ndata: {_dumps({'type': kind, **data})}\n\n"

        events = [sse("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                                    "usage": {**usage, "output_tokens": 1}}})]
        for index, block in enumerate(blocks):
            if block["type"] == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
                deltas = [{"type": "thinking_delta", "thinking": piece} for piece in reply.thinking or []]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif block["type"] == "tool_use":
                start = {**block, "input": {}}
                deltas = [{"type": "input_json_delta", "partial_json": piece}
                          for piece in ["", *_pieces(reply.tool["arguments"] if reply.tool else "")]]
            else:
                start = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": piece} for piece in reply.chunks]
            events.append(sse("content_block_start", {"index": index, "content_block": start}))
            if index == 0:
                events.append(sse("ping", {}))
            events += [sse("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
            events.append(sse("content_block_stop", {"index": index}))
        events.append(sse("message_delta", {
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                                            "output_tokens")}}))
        events.append(sse("message_stop", {}))
        error = sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
        response = self._sse(events, controls, error)
        response.headers.update(headers)
        return response

    # -- OpenAI chat completions ----------------------------------------------------------------------------

    @staticmethod
    def _openai_usage(reply: Reply) -> dict[str, Any]:
        return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                "total_tokens": reply.input_tokens + reply.output_tokens,
                "prompt_tokens_details": {"cached_tokens": reply.cache_read, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reply.reasoning, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def _chat_completions(self, body: dict[str, Any], controls: Controls, stream: bool, azure: bool,
                          deployment: str | None) -> Response:
        for name, kind in (("messages", list),) if azure else (("model", str), ("messages", list)):
            if not isinstance(body.get(name), kind):
                raise _BadRequest(f"Missing required parameter: '{name}'.")
        reply = _reply(body, controls, items=body["messages"], tools=body.get("tools"),
                       tool_choice=body.get("tool_choice"),
                       max_tokens=body.get("max_completion_tokens", body.get("max_tokens")))
        model = controls.model or snapshot(body.get("model") or deployment or "", "openai")
        finish = "tool_calls" if reply.tool else "length" if reply.truncated else "stop"
        call_id = _rid("call_")
        base = {"id": _rid("chatcmpl-", 29), "created": int(time.time()), "model": model,
                "service_tier": "default", "system_fingerprint": "fp_fake0001"}
        filters = {name: {"filtered": False, "severity": "safe"}
                   for name in ("hate", "self_harm", "sexual", "violence")}
        usage = self._openai_usage(reply)
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": None if reply.tool else reply.text,
                                       "refusal": None, "annotations": []}
            if reply.tool:
                message["tool_calls"] = [{"id": call_id, "type": "function", "function": reply.tool}]
            choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            result = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            if azure:
                choice["content_filter_results"] = filters
                result["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": filters}]
            return JSONResponse(result, headers={"x-request-id": _rid("req_", 32), "openai-processing-ms": "1"})

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            data = {**base, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
            if include_usage:
                data["usage"] = None
            return f"data: {_dumps(data)}\n\n"

        events = []
        if azure:  # Azure first sends a chunk without choices that carries the prompt filter results
            first = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                     "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": filters}]}
            events.append(f"data: {_dumps(first)}\n\n")
        if reply.tool:
            pieces = _pieces(reply.tool["arguments"])
            events.append(chunk({"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"index": 0, "id": call_id, "type": "function",
                 "function": {"name": reply.tool["name"], "arguments": ""}}]}))
            events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
        else:
            events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
            events += [chunk({"content": piece}) for piece in reply.chunks]
        events.append(chunk({}, finish))
        if include_usage:
            final = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            events.append(f"data: {_dumps(final)}\n\n")
        events.append("data: [DONE]\n\n")
        error = {"error": {"message": "The server had an error while processing your request.",
                           "type": "server_error", "param": None, "code": None}}
        return self._sse(events, controls, f"data: {_dumps(error)}\n\n")

    # -- OpenAI responses -----------------------------------------------------------------------------------

    def _responses(self, body: dict[str, Any], controls: Controls, stream: bool) -> Response:
        if not isinstance(body.get("model"), str):
            raise _BadRequest("Missing required parameter: 'model'.")
        items = body.get("input") or []
        reply = _reply(body, controls, items=items, tools=body.get("tools"), tool_choice=body.get("tool_choice"),
                       max_tokens=body.get("max_output_tokens"))
        usage = {"input_tokens": reply.input_tokens,
                 "input_tokens_details": {"cached_tokens": reply.cache_read,
                                          "cache_write_tokens": reply.cache_creation},
                 "output_tokens": reply.output_tokens, "output_tokens_details": {"reasoning_tokens": reply.reasoning},
                 "total_tokens": reply.input_tokens + reply.output_tokens}
        if reply.tool:
            item: dict[str, Any] = {"type": "function_call", "id": _rid("fc_", 48), "call_id": _rid("call_"),
                                    "name": reply.tool["name"], "arguments": reply.tool["arguments"],
                                    "status": "completed"}
        else:
            item = {"type": "message", "id": _rid("msg_", 48), "status": "incomplete" if reply.truncated else
                    "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}]}
        status = "incomplete" if reply.truncated else "completed"
        created = int(time.time())
        response: dict[str, Any] = {
            "id": _rid("resp_", 48), "object": "response", "created_at": created, "status": status,
            "background": False, "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if reply.truncated else None,
            "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
            "model": controls.model or snapshot(body["model"], "openai"), "output": [item],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"), "reasoning": {"effort": None, "summary": None},
            "service_tier": "default", "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []), "top_p": body.get("top_p", 1.0), "truncation": "disabled",
            "usage": usage, "user": None, "metadata": body.get("metadata") or {},
            "completed_at": None if reply.truncated else created,
        }
        if not stream:
            return JSONResponse(response, headers={"x-request-id": _rid("req_", 32)})

        events: list[str] = []

        def sse(kind: str, **data: Any) -> None:
            events.append(f"event: {kind}\ndata: {_dumps({'type': kind, 'sequence_number': len(events), **data})}\n\n")

        pending = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None,
                   "completed_at": None}
        sse("response.created", response=pending)
        sse("response.in_progress", response=pending)
        if item["type"] == "function_call":
            sse("response.output_item.added", output_index=0, item={**item, "arguments": "", "status": "in_progress"})
            for piece in _pieces(item["arguments"]):
                sse("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=piece)
            sse("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                arguments=item["arguments"])
        else:
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            sse("response.output_item.added", output_index=0,
                item={**item, "status": "in_progress", "content": []})
            sse("response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part)
            for piece in reply.chunks:
                sse("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0, delta=piece,
                    logprobs=[])
            sse("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=reply.text,
                logprobs=[])
            sse("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                part={**part, "text": reply.text})
        sse("response.output_item.done", output_index=0, item=item)
        sse("response.incomplete" if reply.truncated else "response.completed", response=response)
        error = {"type": "error", "code": "server_error", "message": "The server had an error while processing "
                 "your request.", "param": None, "sequence_number": len(events)}
        return self._sse(events, controls, f"event: error\ndata: {_dumps(error)}\n\n")

    # -- OpenAI embeddings ----------------------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any], controls: Controls) -> Response:
        inputs = body.get("input")
        if not isinstance(body.get("model"), str) or inputs is None:
            raise _BadRequest("Missing required parameter: 'input'." if inputs is None else
                              "Missing required parameter: 'model'.")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        dimensions = body.get("dimensions") or 8
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, value in enumerate(inputs):
            vector = embedding_vector(value, dimensions)
            encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = controls.usage.get("input", sum(len(v.split()) if isinstance(v, str) else len(v) for v in inputs))
        return JSONResponse({"object": "list", "data": data, "model": controls.model or body["model"],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                            headers={"x-request-id": _rid("req_", 32)})


class _BadRequest(Exception):
    """A request the real API would refuse with 400."""


def embedding_vector(value: Any, dimensions: int) -> list[float]:
    """The fake's deterministic unit-length float32 embedding of one input (a string or a token list)."""
    seed = hashlib.sha256(_dumps(value).encode()).digest()
    raw = [int.from_bytes(hashlib.sha256(seed + i.to_bytes(4, "little")).digest()[:4], "little") / 2**31 - 1
           for i in range(dimensions)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in raw))))


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    """One fake provider server for the session; tests tell their requests apart with ``x-fake-key``."""
    with FakeProvider() as provider:
        yield provider
