"""Message-content capture: the opt-in switch and a byte budget that keeps the JSON valid.

`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` says where content goes: `NO_CONTENT` (default),
`SPAN_ONLY` (span attributes), `EVENT_ONLY` (a `gen_ai.client.inference.operation.details` log event),
`SPAN_AND_EVENT`. Values are case-insensitive. For users of the older contrib switch, `true` means
`SPAN_ONLY` (with a one-time warning) and `false` means `NO_CONTENT`; anything else warns once and
captures nothing. The switch is read when instrumentation starts, never per call.

Each content attribute is capped at `LLMLOOP_MAX_CONTENT_BYTES` UTF-8 bytes (default 128 000), or at
`OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT` / `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` when those are smaller
(the SDK would otherwise cut the JSON mid-string). Over-budget content is shortened structurally: long
strings are cut (ending in `…[truncated]`), then the oldest messages dropped, so the value is always
valid JSON; the span then gets `llmloop.content.truncated = true`.
"""

from __future__ import annotations

import enum
import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

ENV_CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_MAX_BYTES = "LLMLOOP_MAX_CONTENT_BYTES"
DEFAULT_MAX_BYTES = 128_000
TRUNCATION_MARK = "…[truncated]"


class CaptureMode(enum.Enum):
    """Where message content is recorded."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (CaptureMode.SPAN_ONLY, CaptureMode.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (CaptureMode.EVENT_ONLY, CaptureMode.SPAN_AND_EVENT)

    @property
    def any(self) -> bool:
        return self is not CaptureMode.NO_CONTENT


def capture_mode_from_env(environ: dict[str, str] | None = None) -> CaptureMode:
    """The capture mode the environment asks for; a bad value warns and gives `NO_CONTENT`."""
    raw = (environ if environ is not None else os.environ).get(ENV_CAPTURE, "").strip()
    if not raw:
        return CaptureMode.NO_CONTENT
    value = raw.upper()
    try:
        return CaptureMode(value)
    except ValueError:
        pass
    if value in ("TRUE", "1"):
        log.warning("%s=%s is the old boolean form; capturing content on spans (SPAN_ONLY). "
                    "Use NO_CONTENT, SPAN_ONLY, EVENT_ONLY or SPAN_AND_EVENT.", ENV_CAPTURE, raw)
        return CaptureMode.SPAN_ONLY
    if value not in ("FALSE", "0"):
        log.warning("%s=%r is not one of NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT; "
                    "capturing no content.", ENV_CAPTURE, raw)
    return CaptureMode.NO_CONTENT


def _positive_int(value: str | None) -> int | None:
    try:
        number = int((value or "").strip())
    except ValueError:
        return None
    return number if number > 0 else None


def max_bytes_from_env(environ: dict[str, str] | None = None) -> int:
    """The per-attribute content budget in bytes (see the module docstring)."""
    env = environ if environ is not None else os.environ
    budget = _positive_int(env.get(ENV_MAX_BYTES)) or DEFAULT_MAX_BYTES
    for name in ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"):
        limit = _positive_int(env.get(name))
        if limit is not None:
            budget = min(budget, limit)
            break
    return budget


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return str(value)


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 kept, unknown objects as their JSON dump or `str`. Never raises."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default)
    except Exception:
        return "null"


def _nbytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _cut_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= cap else value[:cap] + TRUNCATION_MARK
    if isinstance(value, dict):
        return {k: _cut_strings(v, cap) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut_strings(v, cap) for v in value]
    return value


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_string(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return max((_longest_string(v) for v in value), default=0)
    return 0


def bounded_json(value: Any, budget: int) -> tuple[str, bool]:
    """`value` as JSON of at most `budget` UTF-8 bytes, and whether it had to be shortened.

    Strings are cut to the largest common length that fits; if the structure alone is too big, leading
    list items (the oldest messages) are dropped. The result is always valid JSON. Never raises.
    """
    text = dumps(value)
    if len(text) * 4 <= budget or _nbytes(text) <= budget:
        return text, False
    try:
        plain = json.loads(text)  # JSON-native copy: dicts, lists, strings, numbers
        items = plain if isinstance(plain, list) else [plain]
        while items:
            candidate = items if isinstance(plain, list) else items[0]
            low, high = 0, _longest_string(candidate)
            best: str | None = None
            while low <= high:
                cap = (low + high) // 2
                cut = dumps(_cut_strings(candidate, cap))
                if _nbytes(cut) <= budget:
                    best, low = cut, cap + 1
                else:
                    high = cap - 1
            if best is not None:
                return best, True
            if not isinstance(plain, list) or len(items) == 1:
                break
            items = items[1:]
        empty = "[]" if isinstance(plain, list) else "null"
        return empty, True
    except Exception:
        return "[]", True
