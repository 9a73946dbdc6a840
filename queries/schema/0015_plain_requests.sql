-- Requests of plain spans take a first stage of their own, without what they do not need; the rest take 0014's.
-- A request is plain when none of its spans has events or links and every array among their attributes holds one
-- string of under 124 bytes, as an instrumented model call's spans are (`gen_ai.response.finish_reasons`, an array
-- of one string, is the only array on them). Its stage renders no events or links, and its decoder has no field
-- splitter (0014's fold, with lambdas in it). Every insert analysed those again, needed or not: the plain stage
-- costs ~0.04 s less CPU per insert, and a 20k-span insert ~2.3 us less per span (bench/README.md, session 10).
-- ClickHouse analyses a view only for a non-empty block: requests that are not plain go, whole, through a Null table
-- of their own to 0014's first stage, which costs nothing for an insert that has none. Both stages fill the same
-- rows for a plain request (tests/test_plain_requests.py).
--
-- Order for a store that takes inserts while it migrates: the full path is created first, so for a moment requests
-- that are not plain are staged twice, and their duplicate rows collapse like any OTLP retry (FINAL, merges).

-- Whether the AnyValue v is an array of one string of under 124 bytes, every length in one byte: 42 (array_value),
-- length(v) - 2, 10 (values), length(v) - 4, 10 (string_value), length(v) - 6, then the string (bytes 2 to 5 read as
-- one little-endian UInt32). Other encodings of such an array (a padded length) are not plain.
CREATE OR REPLACE FUNCTION llmloopRawOneString {{on_cluster}} AS (v) ->
    length(v) < 130
    AND reinterpretAsUInt32(substring(v, 2, 4)) = length(v) - 2 + 2560 + 65536 * (length(v) - 4) + 167772160
    AND reinterpretAsUInt8(substring(v, 6, 1)) + 6 = length(v);

-- Whether a request (its resource_spans) is plain, as above.
CREATE OR REPLACE FUNCTION llmloopPlainRequest {{on_cluster}} AS (resource_spans) ->
    NOT arrayExists(rs -> arrayExists(ss -> arrayExists(s ->
        notEmpty(tupleElement(s, 'events')) OR notEmpty(tupleElement(s, 'links'))
        OR arrayExists(v -> reinterpretAsUInt8(v) = 50 OR (reinterpretAsUInt8(v) = 42 AND NOT llmloopRawOneString(v)),
                       tupleElement(tupleElement(s, 'attributes'), 'value')),
        tupleElement(ss, 'spans')), tupleElement(rs, 'scope_spans')), resource_spans);

-- llmloopRawString (0014) for the values of a plain request: the same branches for scalars, and the array of one
-- string rendered from its layout.
CREATE OR REPLACE FUNCTION llmloopRawPlain {{on_cluster}} AS (v) ->
    multiIf(reinterpretAsUInt8(v) = 10, substring(v, llmloopRawRest(length(v))),
            reinterpretAsUInt8(v) = 16, if(reinterpretAsUInt8(substring(v, 2, 1)) = 0, 'false', 'true'),
            reinterpretAsUInt8(v) = 24, toString(llmloopRawInt(v)),
            reinterpretAsUInt8(v) = 33, toString(reinterpretAsFloat64(substring(v, 2, 8))),
            reinterpretAsUInt8(v) = 58, base64Encode(substring(v, llmloopRawRest(length(v)))),
            reinterpretAsUInt8(v) = 42, concat('[', toJSONString(substring(v, 7)), ']'),
            '');

CREATE TABLE IF NOT EXISTS {{db}}.otlp_spans_full {{on_cluster}} AS {{db}}.otlp_spans_in ENGINE = Null;

-- 0014's first stage, over the requests that are not plain.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_full_mv {{on_cluster}} TO {{db}}.spans_stage AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT groupArray(concat('\n', key)) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_prefix' AND generation = generation_) AS foreign_prefixes,
    arrayMap(kv -> kv.key, span.attributes) AS span_keys_
SELECT
    fromUnixTimestamp64Nano(toInt64(least(span.start_time_unix_nano, 9223372036854775807))) AS Timestamp,
    lower(hex(span.trace_id)) AS TraceId,
    lower(hex(span.span_id)) AS SpanId,
    lower(hex(span.parent_span_id)) AS ParentSpanId,
    span.trace_state AS TraceState,
    span.name AS SpanName,
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
    FROM {{db}}.otlp_spans_full
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_route_full_mv {{on_cluster}} TO {{db}}.otlp_spans_full AS
SELECT * FROM {{db}}.otlp_spans_in WHERE NOT llmloopPlainRequest(resource_spans);

-- Last, the view of the ingest table becomes the plain requests' stage.
ALTER TABLE {{db}}.otlp_spans_in_mv {{on_cluster}} MODIFY QUERY
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT groupArray(concat('\n', key)) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_prefix' AND generation = generation_) AS foreign_prefixes,
    arrayMap(kv -> kv.key, span.attributes) AS span_keys_
SELECT
    fromUnixTimestamp64Nano(toInt64(least(span.start_time_unix_nano, 9223372036854775807))) AS Timestamp,
    lower(hex(span.trace_id)) AS TraceId,
    lower(hex(span.span_id)) AS SpanId,
    lower(hex(span.parent_span_id)) AS ParentSpanId,
    span.trace_state AS TraceState,
    span.name AS SpanName,
    ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'][if(span.kind BETWEEN 0 AND 5, span.kind + 1, 1)] AS SpanKind,
    resource_attributes['service.name'] AS ServiceName,
    resource_attributes AS ResourceAttributes,
    scope_spans.scope.name AS ScopeName,
    scope_spans.scope.version AS ScopeVersion,
    CAST((tupleElement(span.attributes, 'key'), arrayMap(v -> llmloopRawPlain(v), tupleElement(span.attributes, 'value'))),
         'Map(String, String)') AS SpanAttributes,
    if(span.end_time_unix_nano > span.start_time_unix_nano,
       span.end_time_unix_nano - span.start_time_unix_nano, 0) AS Duration,
    ['Unset', 'Ok', 'Error'][if(span.status.code BETWEEN 0 AND 2, span.status.code + 1, 1)] AS StatusCode,
    span.status.message AS StatusMessage,
    CAST([], 'Array(DateTime64(9))') AS `Events.Timestamp`,
    CAST([], 'Array(String)') AS `Events.Name`,
    CAST([], 'Array(Map(String, String))') AS `Events.Attributes`,
    CAST([], 'Array(String)') AS `Links.TraceId`,
    CAST([], 'Array(String)') AS `Links.SpanId`,
    CAST([], 'Array(String)') AS `Links.TraceState`,
    CAST([], 'Array(Map(String, String))') AS `Links.Attributes`,
    arrayExists(k -> k IN (SELECT key FROM {{db}}.conventions FINAL
                           WHERE mapping = 'foreign_key' AND generation = generation_), span_keys_)
    OR multiSearchAny(concat('\n', arrayStringConcat(span_keys_, '\n')), foreign_prefixes)
    OR empty(foreign_prefixes) AS Foreign
FROM (
    SELECT
        llmloopAttributeMap(resource_spans.resource.attributes) AS resource_attributes,
        resource_spans.scope_spans AS scopes
    FROM (SELECT resource_spans FROM {{db}}.otlp_spans_in WHERE llmloopPlainRequest(resource_spans))
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span;
