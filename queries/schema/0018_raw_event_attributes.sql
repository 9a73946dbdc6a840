-- Event and link attribute values arrive as their wire bytes too, as span attribute values do since 0014, and the
-- staged path renders them with 0014's decoder (byte for byte 0001's rendering). The request's column type then holds
-- AnyValue's typed tuple once (resource attributes) instead of three times, and that type is what ClickHouse's
-- analyser walks again, at every insert, for each view over it: the direct view's analysis fell from ~80 to ~55 ms.
-- Inserts into the old and the new ingest table of one store, alternating: a 1-span insert (an insert's fixed part)
-- 116 -> 97 ms of CPU (medians of 40 pairs, cheaper in 36), a 20k-span insert 26.6 -> 25.5 us per span (24 pairs,
-- cheaper in 15; bench/README.md, session 14). A request with events or links, rare, pays for the decoder instead.
--
-- As in 0014, a new ingest table takes the new format, and 0016's path over `otlp_spans_in` stays for collectors of
-- an earlier version (a cluster upgraded one node at a time). Below, that path again over the new tables, created in
-- the order an insert reaches them backwards (a view exists before anything writes to its table).

CREATE TABLE IF NOT EXISTS {{db}}.otlp_spans_raw_in {{on_cluster}} (
    resource_spans Array(Tuple(
        resource Tuple(attributes {{otlp_attributes}}, dropped_attributes_count UInt32),
        scope_spans Array(Tuple(
            scope Tuple(name String, version String),
            spans Array(Tuple(
                trace_id String, span_id String, trace_state String, parent_span_id String,
                name String, kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64,
                attributes Array(Tuple(key String, value String)), dropped_attributes_count UInt32,
                events Array(Tuple(time_unix_nano UInt64, name String, attributes Array(Tuple(key String, value String)),
                                   dropped_attributes_count UInt32)),
                links Array(Tuple(trace_id String, span_id String, trace_state String,
                                  attributes Array(Tuple(key String, value String)),
                                  dropped_attributes_count UInt32)),
                status Tuple(message String, code Int32)))))))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS {{db}}.otlp_spans_raw_routed {{on_cluster}} AS {{db}}.otlp_spans_raw_in ENGINE = Null;
ALTER TABLE {{db}}.otlp_spans_raw_routed {{on_cluster}} ADD COLUMN IF NOT EXISTS direct Bool;
CREATE TABLE IF NOT EXISTS {{db}}.otlp_spans_raw_full {{on_cluster}} AS {{db}}.otlp_spans_raw_in ENGINE = Null;

-- 0015's first stage of the staged path, event and link attributes decoded from their bytes.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_raw_full_mv {{on_cluster}} TO {{db}}.spans_stage AS
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
    arrayMap(e -> llmloopRawAttributeMap(e.attributes), span.events)
        AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), span.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), span.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, span.links) AS `Links.TraceState`,
    arrayMap(l -> llmloopRawAttributeMap(l.attributes), span.links)
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
    FROM {{db}}.otlp_spans_raw_full
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span;

-- 0016's direct path.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_raw_direct_mv {{on_cluster}} TO {{db}}.spans AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT groupArray(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'input_excludes_cache' AND generation = generation_) AS input_excludes_cache,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_read.input_tokens']) AS cache_read_,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_write.input_tokens']) AS cache_write_
SELECT
    *,
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
    coalesce(nullIf(SpanAttributes['error.type'], ''), if(StatusCode = 'Error', '_OTHER', '')) AS ErrorType,
    SpanAttributes['gen_ai.response.id'] AS ResponseId,
    SpanAttributes['gen_ai.conversation.id'] AS ConversationId,
    SpanAttributes['gen_ai.input.messages'] AS InputMessages,
    SpanAttributes['gen_ai.output.messages'] AS OutputMessages,
    SpanAttributes['gen_ai.system_instructions'] AS SystemInstructions
FROM (
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
        CAST((tupleElement(span.attributes, 'key'),
              arrayMap((v, t) -> llmloopRawTagged(v, t), tupleElement(span.attributes, 'value'),
                       arrayMap(v -> reinterpretAsUInt8(v), tupleElement(span.attributes, 'value')))),
             'Map(String, String)') AS SpanAttributes,
        if(span.end_time_unix_nano > span.start_time_unix_nano,
           span.end_time_unix_nano - span.start_time_unix_nano, 0) AS Duration,
        ['Unset', 'Ok', 'Error'][if(span.status.code BETWEEN 0 AND 2, span.status.code + 1, 1)] AS StatusCode,
        span.status.message AS StatusMessage
    FROM (
        SELECT
            llmloopAttributeMap(resource_spans.resource.attributes) AS resource_attributes,
            resource_spans.scope_spans AS scopes
        FROM (SELECT resource_spans FROM {{db}}.otlp_spans_raw_routed WHERE direct)
        ARRAY JOIN resource_spans
    )
    ARRAY JOIN scopes AS scope_spans
    ARRAY JOIN scope_spans.spans AS span
);

-- 0016's route to the staged path.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_raw_staged_mv {{on_cluster}} TO {{db}}.otlp_spans_raw_full AS
SELECT resource_spans FROM {{db}}.otlp_spans_raw_routed WHERE NOT direct;

-- 0016's view of the ingest table, which decides a request's path.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_raw_route_mv {{on_cluster}} TO {{db}}.otlp_spans_raw_routed AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT groupArray(concat('\n', key)) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_prefix' AND generation = generation_) AS foreign_prefixes,
    (SELECT groupArray(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_key' AND generation = generation_) AS foreign_keys
SELECT resource_spans, llmloopDirectRequest(resource_spans, foreign_keys, foreign_prefixes) AS direct
FROM {{db}}.otlp_spans_raw_in;
