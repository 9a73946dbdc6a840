-- A leaner span ingest: the same rows as 0006's views at about two thirds of the CPU per span.
-- Measured per span on this machine (bench/insert_stages.py and expression micro-benchmarks):
-- * Attribute limits cost more than rendering the values: slicing the parsed key/value array and
--   counting cut values ran for every span. Now a span within the limits (nearly all) takes a fast
--   branch that only renders; the slow branch is 0001's llmloopAttributes, unchanged.
-- * Resource attributes are rendered once per resource (then copied to its spans), not per span.
-- * Whether a span is foreign was a regular expression per attribute key, run twice (once per
--   stage-2 view). Now it is computed once in stage 1, as a set lookup per key plus one
--   multi-substring search for the flattened-message prefixes, both read from `conventions`
--   (mapping 'foreign_key' and 'foreign_prefix', see llmloop.semconv.mapping.tables()).
-- * The staging table keeps attribute maps as Map(String, String): typed columns are read from
--   them there (a lookup in a LowCardinality-keyed map costs twice as much); `spans` converts once.
-- While `conventions` holds no foreign prefixes (not loaded yet, or written by a collector older than
-- this migration) every span counts as foreign, as in 0006: the mapping handles spans in our own
-- names correctly, only more slowly. A false "foreign" never changes a row, only its cost.
--
-- The new pipeline gets new names and is created before the old one is dropped, so a collector still
-- inserting during the migration (a cluster upgraded one node at a time) loses nothing: in that
-- moment both pipelines write, and the duplicate rows collapse like any OTLP retry (FINAL, merges).

CREATE OR REPLACE FUNCTION llmloopCapped {{on_cluster}} AS (keys, vals, n, max_count, max_length, dropped) ->
    if(n <= max_count AND dropped = 0 AND NOT arrayExists(v -> length(v) > max_length, vals),
       CAST((keys, vals), 'Map(String, String)'),
       mapConcat(
           CAST((arraySlice(keys, 1, max_count),
                 arrayMap(v -> if(length(v) > max_length, leftUTF8(v, max_length), v), arraySlice(vals, 1, max_count))),
                'Map(String, String)'),
           mapFilter((k, x) -> x != '0', map(
               'llmloop.dropped_attributes_count', toString(dropped + greatest(n, max_count) - max_count),
               'llmloop.truncated_values_count', toString(arrayCount(
                   v -> length(v) > max_length AND lengthUTF8(v) > max_length, arraySlice(vals, 1, max_count)))))));

-- Same contract as 0001's version (OTLP key/value list -> capped Map), through llmloopCapped. The
-- one-element arrayMap binds the rendered keys and values to names: SQL functions expand inline, and
-- without it llmloopCapped's four uses of `vals` would expand the whole AnyValue rendering four times.
-- Every insert analyses its views anew: with that expansion the fixed cost of an insert, mostly that
-- analysis, was ~0.5 s CPU whatever its size (40 % of a 20k-span insert); now ~0.2 s.
CREATE OR REPLACE FUNCTION llmloopAttributes {{on_cluster}} AS (kvs, max_count, max_length, dropped) ->
    arrayMap((keys, vals) -> llmloopCapped(keys, vals, length(keys), max_count, max_length, dropped),
             [arrayMap(kv -> tupleElement(kv, 'key'), kvs)],
             [arrayMap(kv -> llmloopAnyValueString(tupleElement(kv, 'value')), kvs)])[1];

CREATE TABLE IF NOT EXISTS {{db}}.spans_stage {{on_cluster}} (
    Timestamp DateTime64(9),
    TraceId String,
    SpanId String,
    ParentSpanId String,
    TraceState String,
    SpanName String,
    SpanKind String,
    ServiceName String,
    ResourceAttributes Map(String, String),
    ScopeName String,
    ScopeVersion String,
    SpanAttributes Map(String, String),
    Duration UInt64,
    StatusCode String,
    StatusMessage String,
    Events Nested (Timestamp DateTime64(9), Name String, Attributes Map(String, String)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes Map(String, String)),
    Foreign Bool  -- in a foreign convention: mapped by spans_mapped_mv (0006), else typed directly
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_typed_mv {{on_cluster}} TO {{db}}.spans AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT groupArray(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'input_excludes_cache' AND generation = generation_) AS input_excludes_cache,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_read.input_tokens']) AS cache_read_,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_write.input_tokens']) AS cache_write_
SELECT
    * EXCEPT Foreign,
    SpanAttributes['gen_ai.provider.name'] AS Provider,
    SpanAttributes['gen_ai.operation.name'] AS Operation,
    SpanAttributes['gen_ai.request.model'] AS RequestModel,
    SpanAttributes['gen_ai.response.model'] AS ResponseModel,
    SpanAttributes['llmloop.config.id'] AS ConfigId,
    SpanAttributes['llmloop.config.fingerprint'] AS ConfigFingerprint,
    SpanAttributes['llmloop.rollout.name'] AS RolloutName,
    SpanAttributes['llmloop.rollout.arm'] AS RolloutArm,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.input_tokens'])
        + if(has(input_excludes_cache, ScopeName), ifNull(cache_read_, 0) + ifNull(cache_write_, 0), 0) AS InputTokens,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.output_tokens']) AS OutputTokens,
    cache_read_ AS CacheReadTokens,
    cache_write_ AS CacheWriteTokens,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.reasoning.output_tokens']) AS ReasoningTokens,
    toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) AS TimeToFirstChunk,
    JSONExtract(SpanAttributes['gen_ai.response.finish_reasons'], 'Array(String)') AS FinishReasons,
    coalesce(nullIf(SpanAttributes['error.type'], ''),
             nullIf(llmloopEventAttribute(`Events.Name`, `Events.Attributes`, 'exception', 'exception.type'), ''),
             if(StatusCode = 'Error', '_OTHER', '')) AS ErrorType,
    SpanAttributes['gen_ai.response.id'] AS ResponseId,
    SpanAttributes['gen_ai.conversation.id'] AS ConversationId,
    SpanAttributes['gen_ai.input.messages'] AS InputMessages,
    SpanAttributes['gen_ai.output.messages'] AS OutputMessages,
    SpanAttributes['gen_ai.system_instructions'] AS SystemInstructions
FROM {{db}}.spans_stage
WHERE NOT Foreign;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_route_foreign_mv {{on_cluster}} TO {{db}}.spans_foreign AS
SELECT * EXCEPT Foreign
FROM {{db}}.spans_stage
WHERE Foreign;

-- Last, the view that feeds them: from here on both pipelines run until the old one is dropped.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_mv {{on_cluster}} TO {{db}}.spans_stage AS
WITH
    -- (anyOrNull: with no row yet, the defaults apply rather than 0)
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_attributes'), 128) AS max_count,
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_value_length'), 1048576)
        AS max_length,
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
    llmloopAttributes(span.attributes, max_count, max_length, span.dropped_attributes_count) AS SpanAttributes,
    if(span.end_time_unix_nano > span.start_time_unix_nano,
       span.end_time_unix_nano - span.start_time_unix_nano, 0) AS Duration,
    ['Unset', 'Ok', 'Error'][if(span.status.code BETWEEN 0 AND 2, span.status.code + 1, 1)] AS StatusCode,
    span.status.message AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(least(e.time_unix_nano, 9223372036854775807))), span.events) AS `Events.Timestamp`,
    arrayMap(e -> e.name, span.events) AS `Events.Name`,
    arrayMap(e -> llmloopAttributes(e.attributes, max_count, max_length, e.dropped_attributes_count), span.events)
        AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), span.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), span.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, span.links) AS `Links.TraceState`,
    arrayMap(l -> llmloopAttributes(l.attributes, max_count, max_length, l.dropped_attributes_count), span.links)
        AS `Links.Attributes`,
    arrayExists(k -> k IN (SELECT key FROM {{db}}.conventions FINAL
                           WHERE mapping = 'foreign_key' AND generation = generation_), span_keys_)
    OR multiSearchAny(concat('\n', arrayStringConcat(span_keys_, '\n')), foreign_prefixes)
    OR empty(foreign_prefixes)
    OR hasAny(arrayMap(e -> e.name, span.events), ['gen_ai.client.inference.operation.details', 'gen_ai.content.prompt',
                                                   'gen_ai.content.completion']) AS Foreign
FROM (
    SELECT
        llmloopAttributes(resource_spans.resource.attributes, max_count, max_length,
                          resource_spans.resource.dropped_attributes_count) AS resource_attributes,
        resource_spans.scope_spans AS scopes
    FROM {{db}}.otlp_traces_in
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span;

-- The pipeline of 0006. (Its UDF llmloopForeign stays: functions are server-wide, and another llmloop
-- database on the same server may not have taken this migration yet.)
DROP VIEW IF EXISTS {{db}}.otlp_traces_mv {{on_cluster}};
DROP VIEW IF EXISTS {{db}}.spans_direct_mv {{on_cluster}};
DROP VIEW IF EXISTS {{db}}.spans_foreign_mv {{on_cluster}};
DROP TABLE IF EXISTS {{db}}.spans_staging {{on_cluster}};
