-- Attribute limits leave the fast path. Capping every attribute list in the first stage (0009's
-- llmloopCapped: a check per list, a branch, the capped map) cost 4-8 us of CPU per span and
-- 0.05-0.08 s per insert, much of it ClickHouse analysing that expression again at every insert,
-- although nearly no span is over a limit (bench/README.md, session 7). Now stage 1 renders each list
-- uncapped into spans_raw (Null), with a flag for a span whose lists might be over a limit
-- (OverLimits: more attributes than allowed, some dropped by the sender, or more value bytes than one
-- value may have characters) and the sender's dropped counts:
-- * spans not flagged pass on to spans_stage unchanged (spans_pass_mv);
-- * flagged spans go through spans_capped (Null), whose view caps their lists with 0009's
--   llmloopCapped, exactly as stage 1 did before, and then on to spans_stage too.
-- From spans_stage on nothing changes: 0009's typed view and foreign route read it as before, so a
-- capped span gets the same row as before this migration. A view whose source gets no row in an
-- insert is not run: the capping expression costs nothing while no span needs it. (A flag raised
-- for a span within the limits costs that span the capping view, never a different row.)
--
-- The new stage 1 is created before the old one is dropped, as in 0009: an insert in between is
-- written by both, and its duplicate rows collapse like any OTLP retry (FINAL, merges).

-- A rendered list (Map) might be over a limit. byteSize bounds the longest value: no value has more
-- characters than the list's values have bytes.
CREATE OR REPLACE FUNCTION llmloopMaybeOverLimits {{on_cluster}} AS (attributes, dropped, max_count, max_length) ->
    length(attributes) > max_count OR dropped > 0 OR byteSize(mapValues(attributes)) > max_length;

-- An OTLP key/value list as a Map(key, rendered value), uncapped.
CREATE OR REPLACE FUNCTION llmloopAttributeMap {{on_cluster}} AS (kvs) ->
    CAST((arrayMap(kv -> tupleElement(kv, 'key'), kvs),
          arrayMap(kv -> llmloopAnyValueString(tupleElement(kv, 'value')), kvs)), 'Map(String, String)');

-- A rendered list capped as 0009's llmloopAttributes caps the parsed one.
CREATE OR REPLACE FUNCTION llmloopCapMap {{on_cluster}} AS (attributes, dropped, max_count, max_length) ->
    llmloopCapped(mapKeys(attributes), mapValues(attributes), length(attributes), max_count, max_length, dropped);

CREATE TABLE IF NOT EXISTS {{db}}.spans_raw {{on_cluster}} AS {{db}}.spans_stage ENGINE = Null;

ALTER TABLE {{db}}.spans_raw {{on_cluster}}
    ADD COLUMN IF NOT EXISTS OverLimits Bool,
    ADD COLUMN IF NOT EXISTS ResourceDropped UInt32,
    ADD COLUMN IF NOT EXISTS SpanDropped UInt32,
    ADD COLUMN IF NOT EXISTS EventsDropped Array(UInt32),
    ADD COLUMN IF NOT EXISTS LinksDropped Array(UInt32);

CREATE TABLE IF NOT EXISTS {{db}}.spans_capped {{on_cluster}} AS {{db}}.spans_raw ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_cap_mv {{on_cluster}} TO {{db}}.spans_stage AS
WITH
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_attributes'), 128) AS max_count,
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_value_length'), 1048576)
        AS max_length
SELECT * EXCEPT (OverLimits, ResourceDropped, SpanDropped, EventsDropped, LinksDropped) REPLACE (
    llmloopCapMap(ResourceAttributes, ResourceDropped, max_count, max_length)['service.name'] AS ServiceName,
    llmloopCapMap(ResourceAttributes, ResourceDropped, max_count, max_length) AS ResourceAttributes,
    llmloopCapMap(SpanAttributes, SpanDropped, max_count, max_length) AS SpanAttributes,
    arrayMap((a, d) -> llmloopCapMap(a, d, max_count, max_length), `Events.Attributes`, EventsDropped)
        AS `Events.Attributes`,
    arrayMap((a, d) -> llmloopCapMap(a, d, max_count, max_length), `Links.Attributes`, LinksDropped)
        AS `Links.Attributes`)
FROM {{db}}.spans_capped;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_route_capped_mv {{on_cluster}} TO {{db}}.spans_capped AS
SELECT *
FROM {{db}}.spans_raw
WHERE OverLimits;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_pass_mv {{on_cluster}} TO {{db}}.spans_stage AS
SELECT * EXCEPT (OverLimits, ResourceDropped, SpanDropped, EventsDropped, LinksDropped)
FROM {{db}}.spans_raw
WHERE NOT OverLimits;

-- Stage 1: 0009's view with uncapped lists, the flag and the dropped counts.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_raw_mv {{on_cluster}} TO {{db}}.spans_raw AS
WITH
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_attributes'), 128) AS max_count,
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_value_length'), 1048576)
        AS max_length,
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
    llmloopAttributeMap(span.attributes) AS SpanAttributes,
    if(span.end_time_unix_nano > span.start_time_unix_nano,
       span.end_time_unix_nano - span.start_time_unix_nano, 0) AS Duration,
    ['Unset', 'Ok', 'Error'][if(span.status.code BETWEEN 0 AND 2, span.status.code + 1, 1)] AS StatusCode,
    span.status.message AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(least(e.time_unix_nano, 9223372036854775807))), span.events) AS `Events.Timestamp`,
    arrayMap(e -> e.name, span.events) AS `Events.Name`,
    arrayMap(e -> llmloopAttributeMap(e.attributes), span.events) AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), span.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), span.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, span.links) AS `Links.TraceState`,
    arrayMap(l -> llmloopAttributeMap(l.attributes), span.links) AS `Links.Attributes`,
    arrayExists(k -> k IN (SELECT key FROM {{db}}.conventions FINAL
                           WHERE mapping = 'foreign_key' AND generation = generation_), span_keys_)
    OR multiSearchAny(concat('\n', arrayStringConcat(span_keys_, '\n')), foreign_prefixes)
    OR empty(foreign_prefixes)
    OR hasAny(`Events.Name`, ['gen_ai.client.inference.operation.details', 'gen_ai.content.prompt',
                              'gen_ai.content.completion']) AS Foreign,
    resource_over
    OR llmloopMaybeOverLimits(SpanAttributes, span.dropped_attributes_count, max_count, max_length)
    OR arrayExists((a, d) -> llmloopMaybeOverLimits(a, d, max_count, max_length),
                   arrayConcat(`Events.Attributes`, `Links.Attributes`), arrayConcat(EventsDropped, LinksDropped))
        AS OverLimits,
    resource_dropped AS ResourceDropped,
    span.dropped_attributes_count AS SpanDropped,
    arrayMap(e -> e.dropped_attributes_count, span.events) AS EventsDropped,
    arrayMap(l -> l.dropped_attributes_count, span.links) AS LinksDropped
FROM (
    SELECT
        llmloopAttributeMap(resource_spans.resource.attributes) AS resource_attributes,
        resource_spans.resource.dropped_attributes_count AS resource_dropped,
        llmloopMaybeOverLimits(resource_attributes, resource_dropped, max_count, max_length) AS resource_over,
        resource_spans.scope_spans AS scopes
    FROM {{db}}.otlp_traces_in
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span;

DROP VIEW IF EXISTS {{db}}.otlp_spans_mv {{on_cluster}};
