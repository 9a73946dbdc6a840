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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

DROPPED_KEY = "llmloop.dropped_attributes_count"
TRUNCATED_KEY = "llmloop.truncated_values_count"


def _text(value: str | bytes) -> str:
    """A protobuf string field as text (the lenient request class reads strings as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def json_value(value: Any) -> Any:
    """An AnyValue as a JSON value, the way the ingest views render one (bytes as base64)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _text(value.string_value)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "array_value":
        return [json_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {_text(kv.key): json_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "double_value" and not math.isfinite(value.double_value):
        return None
    return getattr(value, kind) if kind else None


def json_text(value: Any) -> str:
    """An AnyValue as JSON text."""
    return json.dumps(json_value(value), ensure_ascii=False, separators=(",", ":"))


def _cut_strings(value: Any, max_length: int) -> int:
    """Cut every string in an AnyValue (at any depth) to `max_length` characters; how many were cut.

    Invalid UTF-8 (the lenient request class reads strings as bytes) is kept byte for byte, each
    undecodable byte counting as one character."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        raw = value.string_value
        chars = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
        if len(chars) <= max_length:
            return 0
        cut = chars[:max_length]
        value.string_value = cut.encode("utf-8", "surrogateescape") if isinstance(raw, bytes) else cut
        return 1
    if kind == "array_value":
        return sum(_cut_strings(item, max_length) for item in value.array_value.values)
    if kind == "kvlist_value":
        return sum(_cut_strings(kv.value, max_length) for kv in value.kvlist_value.values)
    return 0


def set_string(value: Any, content: str) -> None:
    """Make an AnyValue the string `content`, in the string type of its message class."""
    lenient = isinstance(value.string_value, bytes)
    value.Clear()
    value.string_value = content.encode() if lenient else content


@dataclass(frozen=True)
class AttributeLimits:
    """At most `max_count` attributes per list, at most `max_length` characters per string (None: no limit).

    The OTel SDK's OTEL_ATTRIBUTE_COUNT_LIMIT and OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT (whose default is no
    limit): attributes past the count are dropped; longer strings are cut, also inside arrays and maps,
    while numbers, booleans and bytes are kept whole. What a list lost is recorded in it, only when > 0:
    `llmloop.dropped_attributes_count` (the sender's dropped_attributes_count plus ours) and
    `llmloop.truncated_values_count` (strings cut).
    """

    max_count: int = 128
    max_length: int | None = None

    def may_be_long(self, size: int) -> bool:
        """Whether `size` bytes of protobuf can hold a string longer than `max_length` characters."""
        return self.max_length is not None and size > self.max_length

    def over(self, long: bool) -> Callable[[Any], bool]:
        """Whether a holder (a span, event, link, log record, resource or scope) is over a limit. `long` says
        whether a string can be too long at all (`may_be_long` of the whole request)."""
        max_count = self.max_count
        if long:
            return lambda holder: (len(holder.attributes) > max_count or bool(holder.dropped_attributes_count)
                                   or self.may_be_long(holder.ByteSize()))
        return lambda holder: len(holder.attributes) > max_count or bool(holder.dropped_attributes_count)

    def apply(self, holders: Iterable[Any], long: bool) -> bool:
        """Cap each of `holders` over a limit (see `over`); True if any was."""
        over = self.over(long)
        return self.cap([holder for holder in holders if over(holder)])

    def cap(self, holders: Iterable[Any]) -> bool:
        """Cap `holders`, known to be over a limit; True if one changed."""
        changed = False
        for holder in holders:
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
                if kv.value.ByteSize() > self.max_length:  # a string has at least as many bytes as characters
                    truncated += _cut_strings(kv.value, self.max_length)
        for key, count in ((DROPPED_KEY, dropped), (TRUNCATED_KEY, truncated)):
            if count:
                kv = attributes.add()
                kv.key = key.encode() if isinstance(kv.key, bytes) else key
                set_string(kv.value, str(count))
        return bool(dropped or truncated)


DEFAULT_LIMITS = AttributeLimits()
