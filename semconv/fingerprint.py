"""Config fingerprints: a short stable hash of what defines a model call's config.

A zero-code user gets versioning for free: every GenAI span carries `llmloop.config.fingerprint`, and a
change of prompt, model, parameters or tools shows up as a new value.

What goes in (and nothing else):

- ``v``: the rule version, ``1``. A change to these rules bumps it, so old and new values never collide.
- ``provider``: the `gen_ai.provider.name` (``anthropic``, ``openai``, ``azure.ai.openai``, ...).
- ``model``: the requested model, exactly as given (not the response model).
- ``system``: the system instructions as a list of text parts, in order, each entering as the SHA-256
  (hex) of its UTF-8 text after CRLF is turned into LF and leading/trailing whitespace is stripped;
  empty parts are dropped. Whitespace inside a part is significant. (Anthropic: the ``system`` string
  or its text blocks; OpenAI chat: the text of every ``system``/``developer`` message; OpenAI
  responses: ``instructions``, then system/developer input items.)
- ``params``: the provider's generation parameters that were given (each provider's
  ``FINGERPRINT_PARAMS``), by name. A parameter passed as ``None`` or not given is left out, so
  ``temperature=None`` and no temperature are the same config; ``temperature=1.0`` is not.
- ``tools``: the tool definitions (name, description, schema, type), sorted by tool name; per-request
  cache hints (``cache_control``) are left out.

Not in it: user/assistant/tool messages, metadata, user ids, headers, timeouts, streaming.

Values are rendered as canonical JSON: object keys sorted, no insignificant whitespace, non-ASCII kept
as UTF-8, tuples as lists; in ``params`` a float with an integral value counts as that integer
(``temperature=1`` equals ``temperature=1.0``). Anything not JSON-like (a class passed as
``response_format``, a pydantic model, ...) becomes its JSON schema when it has one, else its qualified
type name. The fingerprint is the first 16 hex digits of the SHA-256 of that rendering.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

VERSION = 1
"""Version of the fingerprint rules; part of the hashed payload."""

LENGTH = 16
"""Hex digits kept of the SHA-256 (64 bits)."""

_DROPPED_TOOL_KEYS = frozenset({"cache_control"})


def normalize_text(text: str) -> str:
    """A system-instruction part as it enters the fingerprint: CRLF to LF, outer whitespace stripped."""
    return text.replace("\r\n", "\n").strip()


def _jsonable(value: Any) -> Any:
    """`json.dumps` fallback for values that are not JSON-like; never raises."""
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):
        try:
            return schema()
        except Exception:
            pass
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    kind = value if isinstance(value, type) else type(value)
    return f"<{kind.__module__}.{kind.__qualname__}>"


def _normalize(value: Any) -> Any:
    """Integral floats as ints, tuples as lists, mapping keys as strings, recursively."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON: sorted keys, compact separators, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _tool_key(tool: Any) -> str:
    if isinstance(tool, Mapping):
        name = tool.get("name")
        if name is None and isinstance(tool.get("function"), Mapping):
            name = tool["function"].get("name")
        return str(name or tool.get("type") or "")
    return ""


def _clean_tool(tool: Any) -> Any:
    if isinstance(tool, Mapping):
        return {k: v for k, v in tool.items() if k not in _DROPPED_TOOL_KEYS}
    return tool


_CACHE_SIZE = 512
_PART_DIGESTS: dict[str, str] = {}
_FINGERPRINTS: dict[tuple[Any, ...], str] = {}


def _part_digest(text: str) -> str | None:
    """SHA-256 of a normalized system part (None for an empty one), memoized: prompts repeat across calls."""
    digest = _PART_DIGESTS.get(text)
    if digest is None:
        normalized = normalize_text(text)
        if not normalized:
            return None
        digest = hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()
        if len(_PART_DIGESTS) >= _CACHE_SIZE:
            _PART_DIGESTS.clear()
        _PART_DIGESTS[text] = digest
    return digest


def fingerprint(
    provider: str,
    model: str | None,
    system: Iterable[str] = (),
    params: Mapping[str, Any] | None = None,
    tools: Iterable[Any] | None = None,
) -> str:
    """The config fingerprint of a call (16 hex digits); see the module docstring for exactly what goes in.

    Raises only for inputs that cannot be iterated; callers inside the app guard it. Results are memoized
    by the inputs' `repr` (a miss just recomputes), since the same config repeats call after call.
    """
    system = tuple(system)
    key = (provider, model, system, repr(params) if params else "", repr(tools) if tools else "")
    cached = _FINGERPRINTS.get(key)
    if cached is not None:
        return cached
    parts = [d for d in (_part_digest(s) for s in system if isinstance(s, str)) if d]
    payload = {
        "v": VERSION,
        "provider": provider,
        "model": model,
        "system": parts,
        "params": {k: _normalize(v) for k, v in (params or {}).items() if v is not None},
        "tools": sorted((_clean_tool(t) for t in tools or ()), key=_tool_key),
    }
    result = hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogatepass")).hexdigest()[:LENGTH]
    if len(_FINGERPRINTS) >= _CACHE_SIZE:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[key] = result
    return result
