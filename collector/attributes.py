"""OTLP attribute values as the store renders them, and the attribute limits the collector applies.

The limits are applied here, to the decoded request, and not in the ingest views: there they cost every
span of every insert (0009's capped maps: 6.8 µs of CPU per span and 0.056 s per insert, bench/README.md,
session 7), while nearly no span is over a limit. Here the check rides on the pass `decode` makes over
every item anyway, and only a list over a limit is rewritten, the way an OTel SDK applies its limits.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DROPPED_KEY = "llmloop.dropped_attributes_count"
TRUNCATED_KEY = "llmloop.truncated_values_count"

# A value's text has at most this many characters per byte of its protobuf encoding (plus the two
# brackets of an array or map): a control character escaped in JSON (\u0001) is the worst case.
_CHARS_PER_BYTE = 6


def text(value: str | bytes) -> str:
    """A protobuf string field as text (the lenient request class reads strings as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def json_value(value: Any) -> Any:
    """An AnyValue as a JSON value, the way the ingest views render one (bytes as base64)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return text(value.string_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "array_value":
        return [json_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {text(kv.key): json_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "double_value" and not math.isfinite(value.double_value):
        return None
    return getattr(value, kind) if kind else None


def json_text(value: Any) -> str:
    """An AnyValue as JSON text."""
    return json.dumps(json_value(value), ensure_ascii=False, separators=(",", ":"))


def _rendered(value: Any) -> str:
    """The text an attribute map stores for an AnyValue (llmloopAnyValueString in 0001)."""
    kind = value.WhichOneof("value")
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind in ("int_value", "double_value"):
        return str(getattr(value, kind))
    if kind in ("array_value", "kvlist_value"):
        return json_text(value) if getattr(value, kind).values else ""
    return json_value(value) if kind else ""


def set_string(value: Any, content: str) -> None:
    """Make an AnyValue the string `content`, in the string type of its message class."""
    lenient = isinstance(value.string_value, bytes)
    value.Clear()
    value.string_value = content.encode() if lenient else content


@dataclass(frozen=True)
class AttributeLimits:
    """At most `max_count` attributes per list, at most `max_length` characters per value (None: no limit).

    Like OTEL_ATTRIBUTE_COUNT_LIMIT and OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT (whose default is no limit):
    attributes past the count are dropped, longer values cut. What a list lost is recorded in it, only
    when > 0: `llmloop.dropped_attributes_count` (the sender's dropped_attributes_count plus ours) and
    `llmloop.truncated_values_count`.
    """

    max_count: int = 128
    max_length: int | None = None

    def may_be_long(self, size: int) -> bool:
        """Whether `size` bytes of protobuf can hold a value longer than `max_length` characters."""
        return self.max_length is not None and _CHARS_PER_BYTE * size + 2 > self.max_length

    def apply(self, holders: Iterable[Any], long: bool) -> bool:
        """Cap each holder (a span, event, link, log record, resource or scope) over a limit; True if any
        was. `long` says whether values can be too long at all (`may_be_long` of the whole request)."""
        changed = False
        for holder in holders:
            if (len(holder.attributes) > self.max_count or holder.dropped_attributes_count
                    or (long and self.may_be_long(holder.ByteSize()))):
                changed = self._cap(holder) or changed
        return changed

    def _cap(self, holder: Any) -> bool:
        attributes = holder.attributes
        dropped = holder.dropped_attributes_count + max(0, len(attributes) - self.max_count)
        del attributes[self.max_count:]
        holder.dropped_attributes_count = 0  # now counted in the list itself
        truncated = 0
        if self.max_length is not None:
            for kv in attributes:
                if self.may_be_long(kv.value.ByteSize()):
                    rendered = _rendered(kv.value)
                    if len(rendered) > self.max_length:
                        set_string(kv.value, rendered[:self.max_length])
                        truncated += 1
        for key, count in ((DROPPED_KEY, dropped), (TRUNCATED_KEY, truncated)):
            if count:
                kv = attributes.add()
                kv.key = key.encode() if isinstance(kv.key, bytes) else key
                set_string(kv.value, str(count))
        return bool(dropped or truncated)


DEFAULT_LIMITS = AttributeLimits()
