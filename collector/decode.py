"""Decode OTLP export requests (protobuf or JSON) and reject invalid items one by one.

The result is the request re-encoded as protobuf (or the original bytes when nothing was dropped),
ready for ClickHouse's Protobuf input format, plus the OTLP partial-success count and message.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from llmloop.collector.attributes import DEFAULT_LIMITS, AttributeLimits, json_text, set_string
from llmloop.collector.errors import BadRequest
from llmloop.collector.protoschema import lenient_message_class

MAX_MESSAGES = 5  # distinct reasons quoted in a partial-success message

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)


def _span_problem(span: Any) -> str | None:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return f"trace_id must be 16 non-zero bytes, got {len(span.trace_id)} bytes"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return f"span_id must be 8 non-zero bytes, got {len(span.span_id)} bytes"
    if len(span.parent_span_id) not in (0, 8):
        return f"parent_span_id must be empty or 8 bytes, got {len(span.parent_span_id)} bytes"
    for link in span.links:
        if len(link.trace_id) != 16 or len(link.span_id) != 8:
            return "link trace_id/span_id must be 16/8 bytes"
    return None


def _scan_spans(spans: Any, over: Callable[[Any], bool]) -> tuple[list[int], list[Any]]:
    """One pass over the spans (decode's per-span cost): the indices of those `_span_problem` must
    check (odd ids, or links), and the spans, events and links `over` an attribute limit."""
    suspects, capped = [], []
    for index, span in enumerate(spans):
        trace, sid, links = span.trace_id, span.span_id, span.links
        if (len(trace) != 16 or trace == _ZERO_TRACE or len(sid) != 8 or sid == _ZERO_SPAN
                or len(span.parent_span_id) not in (0, 8) or links):
            suspects.append(index)
        if over(span):
            capped.append(span)
        if links:
            capped.extend(link for link in links if over(link))
        if events := span.events:
            capped.extend(event for event in events if over(event))
    return suspects, capped


def _log_problem(record: Any) -> str | None:
    if len(record.trace_id) not in (0, 16):
        return f"trace_id must be empty or 16 bytes, got {len(record.trace_id)} bytes"
    if len(record.span_id) not in (0, 8):
        return f"span_id must be empty or 8 bytes, got {len(record.span_id)} bytes"
    return None


def _scan_logs(records: Any, over: Callable[[Any], bool]) -> tuple[list[int], list[Any]]:
    """`_scan_spans` for log records."""
    suspects, capped = [], []
    for index, record in enumerate(records):
        if len(record.trace_id) not in (0, 16) or len(record.span_id) not in (0, 8):
            suspects.append(index)
        if over(record):
            capped.append(record)
    return suspects, capped


def _children(value: Any) -> list[Any]:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return list(value.array_value.values)
    if kind == "kvlist_value":
        return [kv.value for kv in value.kvlist_value.values]
    return []


def _flatten_deep_values(record: Any) -> bool:
    """Replace a body or attribute nested deeper than the store's schema reads (see protoschema's
    MAX_REPEAT) by its JSON text, which is what the views would render: GenAI events carry whole
    messages (`gen_ai.choice` bodies, structured `gen_ai.input.messages`) as nested values. True if
    something was replaced."""
    changed = False
    for value in (record.body, *(kv.value for kv in record.attributes)):
        if any(_children(child) for child in _children(value)):
            set_string(value, json_text(value))
            changed = True
    return changed


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: its messages, the nesting of its items, and how items are checked."""

    name: str
    table: str  # the Null table of `<database>` the writer inserts requests into
    request: type[Message]
    response: type[Message]
    path: tuple[str, str, str]  # e.g. resource_spans, scope_spans, spans
    json_path: tuple[str, str, str]  # the same in OTLP/JSON's lowerCamelCase
    rejected_field: str  # field of partial_success that counts rejected items
    problem: Callable[[Any], str | None]
    # One pass over a list of items (the per-item cost): the indices of those `problem` must see, and
    # the items and parts of them (a span's events and links) over the limits (the given check).
    scan: Callable[[Any, Callable[[Any], bool]], tuple[list[int], list[Any]]]
    id_fields: tuple[str, ...]  # JSON fields holding hex ids (OTLP/JSON deviates from proto3 here)
    rewrite: Callable[[Any], bool] | None = None  # adapts an accepted item for the store; True if changed
    scope_attributes: bool = False  # whether the store keeps the scope's attributes
    raw_fields: tuple[str, ...] = ()  # fields the store reads as wire bytes (protoschema.format_schema's `raw`)

    @cached_property
    def lenient_request(self) -> type[Message]:
        """The request with strings as bytes: full structural check, invalid UTF-8 tolerated."""
        return lenient_message_class(self.request.DESCRIPTOR)


TRACES = Signal(
    "traces",
    "otlp_spans_raw_in",
    trace_service_pb2.ExportTraceServiceRequest,
    trace_service_pb2.ExportTraceServiceResponse,
    ("resource_spans", "scope_spans", "spans"),
    ("resourceSpans", "scopeSpans", "spans"),
    "rejected_spans",
    _span_problem,
    _scan_spans,
    ("traceId", "spanId", "parentSpanId"),
    # Attribute values below the resource as wire bytes, decoded by the ingest views (0014, 0018).
    raw_fields=tuple(f"resource_spans.scope_spans.spans.{part}attributes.value" for part in ("", "events.", "links.")),
)
LOGS = Signal(
    "logs",
    "otlp_logs_in",
    logs_service_pb2.ExportLogsServiceRequest,
    logs_service_pb2.ExportLogsServiceResponse,
    ("resource_logs", "scope_logs", "log_records"),
    ("resourceLogs", "scopeLogs", "logRecords"),
    "rejected_log_records",
    _log_problem,
    _scan_logs,
    ("traceId", "spanId"),
    _flatten_deep_values,
    scope_attributes=True,
)


@dataclass
class Decoded:
    """A checked request: protobuf `payload` holding `accepted` items; `rejected` were dropped."""

    payload: bytes
    accepted: int
    rejected: int = 0
    message: str = ""

    def response(self, signal: Signal) -> Message:
        """The OTLP response: partial_success only when something was rejected."""
        response = signal.response()
        if self.rejected:
            partial = response.partial_success
            setattr(partial, signal.rejected_field, self.rejected)
            partial.error_message = self.message
        return response


def decode(signal: Signal, body: bytes, json_body: bool, limits: AttributeLimits = DEFAULT_LIMITS) -> Decoded:
    """Decode `body` and apply the attribute `limits`; raise BadRequest if it is not an OTLP request at all."""
    reasons: dict[str, int] = {}
    if json_body:
        request = _from_json(signal, body, reasons)
    else:
        try:
            request = signal.lenient_request.FromString(body)
        except DecodeError as exc:
            raise BadRequest(f"body is not a valid protobuf {signal.request.__name__}: {exc}") from None
    accepted = 0
    rejected = sum(reasons.values())
    changed = json_body
    outer, middle, inner = signal.path
    long = limits.may_be_long(len(body))
    over = limits.over(long)
    for resource in getattr(request, outer):
        changed = limits.apply((resource.resource,), long) or changed
        for scope in getattr(resource, middle):
            if signal.scope_attributes:
                changed = limits.apply((scope.scope,), long) or changed
            items = getattr(scope, inner)
            if signal.rewrite is not None:  # first: the values it writes count against the limits
                for item in items:
                    changed = signal.rewrite(item) or changed
            suspects, capped = signal.scan(items, over)
            changed = limits.cap(capped) or changed  # before any copy below, which keeps the caps
            bad = set()
            for index in suspects:
                problem = signal.problem(items[index])
                if problem is not None:
                    bad.add(index)
                    reasons[problem] = reasons.get(problem, 0) + 1
            if bad:
                keep = [item for index, item in enumerate(items) if index not in bad]
                rejected += len(items) - len(keep)
                changed = True
                kept = [type(item)() for item in keep]
                for copy, item in zip(kept, keep, strict=False):
                    copy.CopyFrom(item)
                del items[:]
                items.extend(kept)
            accepted += len(items)
    payload = request.SerializeToString() if changed else body
    message = "; ".join(f"{n} x {reason}" for reason, n in list(reasons.items())[:MAX_MESSAGES])
    return Decoded(payload, accepted, rejected, message)


def _from_json(signal: Signal, body: bytes, reasons: dict[str, int]) -> Message:
    """OTLP/JSON to a message: hex ids (not base64), integer enums, unknown fields ignored."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("OTLP/JSON body must be a JSON object")
    outer, middle, inner = signal.json_path
    for resource in _objects(data.get(outer)):
        for scope in _objects(resource.get(middle)):
            items = scope.get(inner)
            if isinstance(items, list):
                scope[inner] = [item for item in items if _hex_ids_to_base64(signal, item, reasons)]
    try:
        return json_format.ParseDict(data, signal.request(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise BadRequest(f"body is not a valid OTLP/JSON {signal.request.__name__}: {exc}") from None


def _objects(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _hex_ids_to_base64(signal: Signal, item: Any, reasons: dict[str, int]) -> bool:
    """Rewrite an item's hex ids (and its links') for ParseDict; False if one is not hex."""
    if not isinstance(item, dict):
        return True  # ParseDict reports the type error
    holders = [item, *_objects(item.get("links"))]
    for holder in holders:
        for field in signal.id_fields:
            value = holder.get(field)
            if value is None or value == "":
                continue
            try:
                holder[field] = base64.b64encode(bytes.fromhex(value)).decode()
            except (TypeError, ValueError, binascii.Error):
                reason = f"{field} is not a hex string"
                reasons[reason] = reasons.get(reason, 0) + 1
                return False
    return True
