-- Span attribute values arrive as their protobuf wire bytes and are decoded here, in SQL, by one decoder.
-- ClickHouse's Protobuf input format fills one column per AnyValue field for every attribute (five scalars,
-- two nested arrays, whichever is set): parsing that was ~10 us of CPU per GenAI span, about a quarter of an
-- insert; with the value as one String column, ~5 (bench/README.md, session 9). The decoder below is a larger
-- expression for the analyser, which every insert runs again (+0.04 s of CPU per insert), but a 20k-span insert
-- costs ~18 % less CPU in all. Resource, event and link attributes (a few per request, or rare) keep 0001's typed
-- rendering.
--
-- The rendering is 0001's, byte for byte (tests/test_attribute_rendering.py checks one against the other):
-- strings as they are, booleans as true/false, integers and doubles as text, bytes as base64, arrays and maps
-- as JSON whose elements are scalars (an array or map nested in one renders as null), empty ones as ''.
-- The wire format read here (https://protobuf.dev/programming-guides/encoding/): each field is a tag byte
-- (field number << 3 | wire type), then a varint, 8 bytes, or a varint length and that many bytes. An AnyValue
-- holds one field of its oneof: 10 string, 16 bool, 24 int, 33 double, 42 array, 50 map, 58 bytes. Lengths are
-- read up to four varint bytes (256 MiB; a request is at most --max-body-bytes, 64 MiB by default); string and
-- bytes lengths in their shortest form, as encoders write them (message lengths may be padded).
-- An AnyValue is read as its one field, to its end: one with unknown fields after its value (which no OTLP
-- encoder writes) would keep them as part of a string; typed columns would have dropped them.
--
-- A new ingest table takes the new format, because the old one's column type cannot change under a collector
-- of an earlier version still inserting typed values into it (a cluster upgraded one node at a time). Both
-- tables feed `spans_stage`; the old one stays for such collectors. Spool segments are OTLP requests either way.

-- SQL functions expand inline wherever they are used, and each use of an argument copies the argument's whole
-- expression into the query, which the analyser reads again at every insert (~0.1 ms per function node, ~1 ms
-- per lambda). So the functions below are called with short arguments (names, tupleElement), and a longer value
-- needed more than once is bound to a name by a one-element arrayMap.

-- The value of a varint of up to four bytes, from its first four bytes read as a little-endian UInt32 x.
CREATE OR REPLACE FUNCTION llmloopVarint32 {{on_cluster}} AS (x) ->
    bitAnd(x, 127)
    + if(bitAnd(x, 128) = 0, 0, bitShiftRight(bitAnd(x, 32512), 1)
        + if(bitAnd(x, 32768) = 0, 0, bitShiftRight(bitAnd(x, 8323072), 2)
            + if(bitAnd(x, 8388608) = 0, 0, bitShiftRight(bitAnd(x, 2130706432), 3))));

-- The width in bytes of the same varint, from its continuation bits (encoders may pad a length: the .NET OTLP
-- exporter writes some in four bytes).
CREATE OR REPLACE FUNCTION llmloopVarintWidth {{on_cluster}} AS (x) ->
    1 + (bitAnd(x, 128) != 0) + (bitAnd(x, 32896) = 32896) + (bitAnd(x, 8421504) = 8421504);

-- Where a string's or bytes' content starts in an AnyValue of `size` bytes: a content of n bytes takes
-- 1 + width(n) + n, and encoders write such lengths in their shortest form. (Lengths of messages, which some
-- encoders pad, are read by their continuation bits below.) Cheaper than reading the bytes, for every value.
CREATE OR REPLACE FUNCTION llmloopRawRest {{on_cluster}} AS (size) ->
    3 + (size > 130) + (size > 16387) + (size > 2097156);

-- The content of a length-delimited field that fills the rest of v from its tag byte on (an AnyValue holds one
-- field, no OTLP encoder writes more, and so does a KeyValue after its key), its length read by its bits.
CREATE OR REPLACE FUNCTION llmloopRawContent {{on_cluster}} AS (v) ->
    substring(v, 2 + llmloopVarintWidth(reinterpretAsUInt32(substring(v, 2, 4))));

-- The length-delimited field whose tag is at 1-based position p of s, as (where its content starts, its length).
CREATE OR REPLACE FUNCTION llmloopRawFieldAt {{on_cluster}} AS (s, p) ->
    arrayMap(x -> (p + 1 + llmloopVarintWidth(x), llmloopVarint32(x)), [reinterpretAsUInt32(substring(s, p + 1, 4))])[1];

-- The contents of the length-delimited fields that make up s (the elements of a repeated field: an array's
-- values, a map's entries), found by a fold from field to field that collects their positions. Every field
-- takes at least two bytes and starts with its tag (here 10, a newline), so there are at most
-- min(newlines, length / 2) of them: that bounds the fold. Each step costs the fold's overhead, so very long
-- arrays (thousands of values, but for doubles: llmloopRawDoubles) and values with many newlines cost
-- milliseconds to seconds (bench/README.md).
CREATE OR REPLACE FUNCTION llmloopRawFields {{on_cluster}} AS (s) ->
    arrayMap(f -> substring(s, tupleElement(f, 1), tupleElement(f, 2)), tupleElement(arrayFold(
        (acc, k) -> if(tupleElement(acc, 1) > length(s), acc,
            arrayMap(f -> (tupleElement(f, 1) + tupleElement(f, 2), arrayPushBack(tupleElement(acc, 2), f)),
                     [llmloopRawFieldAt(s, tupleElement(acc, 1))])[1]),
        range(least(countSubstrings(s, '\n'), intDiv(length(s), 2))),
        (toUInt64(1), CAST([], 'Array(Tuple(UInt64, UInt64))'))), 2));

-- The int64 of an AnyValue v (tag 24, a varint of up to ten bytes).
CREATE OR REPLACE FUNCTION llmloopRawInt {{on_cluster}} AS (v) ->
    arrayMap(x -> reinterpretAsInt64(
        bitAnd(x, 127) + bitShiftRight(bitAnd(x, 32512), 1) + bitShiftRight(bitAnd(x, 8323072), 2)
        + bitShiftRight(bitAnd(x, 2130706432), 3) + bitShiftRight(bitAnd(x, 545460846592), 4)
        + bitShiftRight(bitAnd(x, 139637976727552), 5) + bitShiftRight(bitAnd(x, 35747322042253312), 6)
        + bitShiftRight(bitAnd(x, 9151314442816847872), 7)
        + bitShiftLeft(toUInt64(bitAnd(reinterpretAsUInt8(substring(v, 10, 1)), 127)), 56)
        + bitShiftLeft(toUInt64(bitAnd(reinterpretAsUInt8(substring(v, 11, 1)), 1)), 63)),
        [reinterpretAsUInt64(substring(v, 2, 8))])[1];

-- An AnyValue v with tag t inside an array or map, as a JSON value (an array or map nested in it as null).
CREATE OR REPLACE FUNCTION llmloopRawJson {{on_cluster}} AS (v, t) ->
    multiIf(t = 10, toJSONString(substring(v, llmloopRawRest(length(v)))),
            t = 16, if(reinterpretAsUInt8(substring(v, 2, 1)) = 0, 'false', 'true'),
            t = 24, toString(llmloopRawInt(v)),
            t = 33 AND isFinite(reinterpretAsFloat64(substring(v, 2, 8))), toString(reinterpretAsFloat64(substring(v, 2, 8))),
            t = 58, toJSONString(base64Encode(substring(v, llmloopRawRest(length(v))))),
            'null');

-- A map entry (a KeyValue: 10 key, 18 value; an empty key is left out) as (key, value bytes).
CREATE OR REPLACE FUNCTION llmloopRawEntry {{on_cluster}} AS (kv) ->
    if(reinterpretAsUInt8(kv) = 10,
       arrayMap(f -> (substring(kv, tupleElement(f, 1), tupleElement(f, 2)),
                      llmloopRawContent(substring(kv, tupleElement(f, 1) + tupleElement(f, 2)))),
                [llmloopRawFieldAt(kv, 1)])[1],
       ('', llmloopRawContent(kv)));

-- An array (t = 42) or map (50) whose elements (values, or KeyValue entries) are `elements`, as JSON.
CREATE OR REPLACE FUNCTION llmloopRawContainer {{on_cluster}} AS (t, elements) ->
    concat(if(t = 42, '[', '{'), arrayStringConcat(arrayMap(
        entry -> concat(if(t = 42, '', concat(toJSONString(tupleElement(entry, 1)), ':')),
                        llmloopRawJson(tupleElement(entry, 2), reinterpretAsUInt8(tupleElement(entry, 2)))),
        arrayMap(e -> if(t = 42, ('', e), llmloopRawEntry(e)), elements)), ','), if(t = 42, ']', '}'));

-- An array's content c as JSON if every value in it is a double (embedding vectors, thousands of them), else ''.
-- Found by a regular expression over its hex (each value is 0A 09 21 and 8 bytes), all at once: the fold above
-- costs ~0.1 ms per value. Matches that tile the whole content are the values, in order.
CREATE OR REPLACE FUNCTION llmloopRawDoubles {{on_cluster}} AS (c) ->
    arrayMap(m -> if(length(m) > 0 AND length(m) * 22 = length(hex(c)),
                     concat('[', arrayStringConcat(arrayMap(
                         x -> if(isFinite(reinterpretAsFloat64(unhex(x))), toString(reinterpretAsFloat64(unhex(x))), 'null'), m), ','), ']'),
                     ''),
             [extractAll(hex(c), '0A0921([0-9A-F]{16})')])[1];

-- A top-level AnyValue as the string stored in attribute maps (0001's llmloopAnyValueString). One multiIf, not
-- nested ones: a multiIf inside another's branch loses its short-circuit evaluation, and then every branch (the
-- int decoding, the double formatting) ran for every value (+0.15 s of CPU per 20k-span insert).
CREATE OR REPLACE FUNCTION llmloopRawString {{on_cluster}} AS (v) ->
    multiIf(reinterpretAsUInt8(v) = 10, substring(v, llmloopRawRest(length(v))),
            reinterpretAsUInt8(v) = 16, if(reinterpretAsUInt8(substring(v, 2, 1)) = 0, 'false', 'true'),
            reinterpretAsUInt8(v) = 24, toString(llmloopRawInt(v)),
            reinterpretAsUInt8(v) = 33, toString(reinterpretAsFloat64(substring(v, 2, 8))),
            reinterpretAsUInt8(v) = 58, base64Encode(substring(v, llmloopRawRest(length(v)))),
            reinterpretAsUInt8(v) = 42 AND llmloopRawDoubles(llmloopRawContent(v)) != '', llmloopRawDoubles(llmloopRawContent(v)),
            reinterpretAsUInt8(v) IN (42, 50) AND llmloopRawContent(v) != '',
            arrayMap(s -> llmloopRawContainer(reinterpretAsUInt8(v), llmloopRawFields(s)), [llmloopRawContent(v)])[1],
            '');

-- A key/value list with raw values as Map(key, rendered value).
CREATE OR REPLACE FUNCTION llmloopRawAttributeMap {{on_cluster}} AS (kvs) ->
    CAST((tupleElement(kvs, 'key'), arrayMap(v -> llmloopRawString(v), tupleElement(kvs, 'value'))), 'Map(String, String)');

CREATE TABLE IF NOT EXISTS {{db}}.otlp_spans_in {{on_cluster}} (
    resource_spans Array(Tuple(
        resource Tuple(attributes {{otlp_attributes}}, dropped_attributes_count UInt32),
        scope_spans Array(Tuple(
            scope Tuple(name String, version String),
            spans Array(Tuple(
                trace_id String, span_id String, trace_state String, parent_span_id String,
                name String, kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64,
                attributes Array(Tuple(key String, value String)), dropped_attributes_count UInt32,
                events Array(Tuple(time_unix_nano UInt64, name String, attributes {{otlp_attributes}},
                                   dropped_attributes_count UInt32)),
                links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {{otlp_attributes}},
                                  dropped_attributes_count UInt32)),
                status Tuple(message String, code Int32)))))))
) ENGINE = Null;

-- 0013's first stage over the new table, the span attributes decoded from their bytes.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_in_mv {{on_cluster}} TO {{db}}.spans_stage AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT groupArray(concat('\n', key)) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_prefix' AND generation = generation_) AS foreign_prefixes,
    -- (the foreign check reads the parsed keys, not the SpanAttributes alias: that would expand its
    -- expression again)
    arrayMap(kv -> kv.key, span.attributes) AS span_keys_
SELECT
    fromUnixTimestamp64Nano(toInt64(least(span.start_time_unix_nano, 9223372036854775807))) AS Timestamp,
    lower(hex(span.trace_id)) AS TraceId,
    lower(hex(span.span_id)) AS SpanId,
    lower(hex(span.parent_span_id)) AS ParentSpanId,
    span.trace_state AS TraceState,
    span.name AS SpanName,
    -- Out-of-range enums read as the zero value; timestamps past DateTime64's range (year 2262) clamp.
    ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'][if(span.kind BETWEEN 0 AND 5, span.kind + 1, 1)] AS SpanKind,
    resource_attributes['service.name'] AS ServiceName,
    resource_attributes AS ResourceAttributes,
    scope_spans.scope.name AS ScopeName,
    scope_spans.scope.version AS ScopeVersion,
    llmloopRawAttributeMap(span.attributes) AS SpanAttributes,
    if(span.end_time_unix_nano > span.start_time_unix_nano,
       span.end_time_unix_nano - span.start_time_unix_nano, 0) AS Duration,
    ['Unset', 'Ok', 'Error'][if(span.status.code BETWEEN 0 AND 2, span.status.code + 1, 1)] AS StatusCode,
    span.status.message AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(least(e.time_unix_nano, 9223372036854775807))), span.events) AS `Events.Timestamp`,
    arrayMap(e -> e.name, span.events) AS `Events.Name`,
    arrayMap(e -> llmloopAttributeMap(e.attributes), span.events)
        AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), span.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), span.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, span.links) AS `Links.TraceState`,
    arrayMap(l -> llmloopAttributeMap(l.attributes), span.links)
        AS `Links.Attributes`,
    arrayExists(k -> k IN (SELECT key FROM {{db}}.conventions FINAL
                           WHERE mapping = 'foreign_key' AND generation = generation_), span_keys_)
    OR multiSearchAny(concat('\n', arrayStringConcat(span_keys_, '\n')), foreign_prefixes)
    OR empty(foreign_prefixes)
    OR hasAny(arrayMap(e -> e.name, span.events), ['gen_ai.client.inference.operation.details', 'gen_ai.content.prompt',
                                                   'gen_ai.content.completion']) AS Foreign
FROM (
    SELECT
        llmloopAttributeMap(resource_spans.resource.attributes) AS resource_attributes,
        resource_spans.scope_spans AS scopes
    FROM {{db}}.otlp_spans_in
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span;
