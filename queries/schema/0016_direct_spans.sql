-- Plain requests (0015) whose attribute keys are all in our own conventions go from the ingest table straight into
-- `spans`, in one view that explodes them and fills the typed columns, instead of through `spans_stage` and its
-- views. Passing the rows through that Null table to a second view cost more than the work on either side of it:
-- 0015's first stage and the typed view as one SELECT took ~0.1 s less CPU per 20k-span insert and ~0.02 s less per
-- 1-span insert, measured paired in one store. End to end, 200k spans over OTLP/HTTP: ~47k against ~40k spans/s,
-- collector CPU ~7.3 against ~8.5 s (medians of 16 alternating runs; bench/README.md, session 11). Whether a
-- span is foreign is asked once per request, of its distinct keys, where the staged path asks it of every span.
-- The ingest table now has one view, which decides a request's path once and passes it on with the answer to a Null
-- table, whose two views take the direct requests and the rest (to 0015's `otlp_spans_full`, 0014's stage, as
-- before). A request with one foreign span takes the staged path whole, as one with an event does.
--
-- Order for a store that takes inserts while it migrates: the new paths are complete before the ingest table's
-- new view exists, and the old views are dropped after it; in between, requests are stored twice, and the
-- duplicate rows collapse like any OTLP retry (FINAL, merges).

-- A request's spans, nested by resource and scope (Array(Array(Array(span)))): a field of them is read the same way,
-- as nested arrays of that field.
CREATE OR REPLACE FUNCTION llmloopRequestSpans {{on_cluster}} AS (resource_spans) ->
    tupleElement(tupleElement(resource_spans, 'scope_spans'), 'spans');

-- Whether one of `keys` is a foreign key or starts with a foreign prefix.
CREATE OR REPLACE FUNCTION llmloopForeignKeys {{on_cluster}} AS (keys, foreign_keys, foreign_prefixes) ->
    hasAny(keys, foreign_keys) OR multiSearchAny(concat('\n', arrayStringConcat(keys, '\n')), foreign_prefixes);

-- Whether a request goes straight into `spans`: it is plain (0015: no events or links, no map values, arrays only of
-- one short string), and none of its span attribute keys is one of `foreign_keys` or starts with one of
-- `foreign_prefixes` (each with a newline before it, as 0009's views keep them). No prefixes means the
-- conventions are not loaded: then every span counts as foreign, as in 0009. The request's events, links, values and
-- keys are read as its columns' subcolumns, all levels flattened: one lambda instead of 0015's nested ones, ~4 ms
-- less analysis per insert (bench/README.md, session 11).
CREATE OR REPLACE FUNCTION llmloopDirectRequest {{on_cluster}} AS (resource_spans, foreign_keys, foreign_prefixes) ->
    notEmpty(foreign_prefixes)
    AND empty(arrayFlatten(tupleElement(llmloopRequestSpans(resource_spans), 'events')))
    AND empty(arrayFlatten(tupleElement(llmloopRequestSpans(resource_spans), 'links')))
    AND NOT arrayExists(v -> reinterpretAsUInt8(v) = 50 OR (reinterpretAsUInt8(v) = 42 AND NOT llmloopRawOneString(v)),
        arrayFlatten(tupleElement(tupleElement(llmloopRequestSpans(resource_spans), 'attributes'), 'value')))
    AND NOT llmloopForeignKeys(
        arrayDistinct(arrayFlatten(tupleElement(tupleElement(llmloopRequestSpans(resource_spans), 'attributes'),
                                                'key'))),
        foreign_keys, foreign_prefixes);

-- 0015's llmloopRawPlain with the value's tag t (its first byte) read once, outside: multiIf's short-circuit
-- evaluates each condition on the rows no condition before it took, and reading the tag from the value there again
-- cost ~0.3 us per span.
CREATE OR REPLACE FUNCTION llmloopRawTagged {{on_cluster}} AS (v, t) ->
    multiIf(t = 10, substring(v, llmloopRawRest(length(v))),
            t = 16, if(reinterpretAsUInt8(substring(v, 2, 1)) = 0, 'false', 'true'),
            t = 24, toString(llmloopRawInt(v)),
            t = 33, toString(reinterpretAsFloat64(substring(v, 2, 8))),
            t = 58, base64Encode(substring(v, llmloopRawRest(length(v)))),
            t = 42, concat('[', toJSONString(substring(v, 7)), ']'),
            '');

CREATE TABLE IF NOT EXISTS {{db}}.otlp_spans_routed {{on_cluster}} AS {{db}}.otlp_spans_in ENGINE = Null;
ALTER TABLE {{db}}.otlp_spans_routed {{on_cluster}} ADD COLUMN IF NOT EXISTS direct Bool;

-- The direct path: 0015's plain stage and 0009's typed view (spans_typed_mv) as one view. A plain request has no
-- events or links, so the Events and Links columns keep their defaults (empty) and ErrorType has no exception event
-- to read.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_direct_mv {{on_cluster}} TO {{db}}.spans AS
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
        FROM (SELECT resource_spans FROM {{db}}.otlp_spans_routed WHERE direct)
        ARRAY JOIN resource_spans
    )
    ARRAY JOIN scopes AS scope_spans
    ARRAY JOIN scope_spans.spans AS span
);

-- The rest: 0014's first stage, through 0015's Null table.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_staged_mv {{on_cluster}} TO {{db}}.otlp_spans_full AS
SELECT resource_spans FROM {{db}}.otlp_spans_routed WHERE NOT direct;

-- The ingest table's one view: the path, decided once per request.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_spans_route_mv {{on_cluster}} TO {{db}}.otlp_spans_routed AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT groupArray(concat('\n', key)) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_prefix' AND generation = generation_) AS foreign_prefixes,
    (SELECT groupArray(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_key' AND generation = generation_) AS foreign_keys
SELECT resource_spans, llmloopDirectRequest(resource_spans, foreign_keys, foreign_prefixes) AS direct
FROM {{db}}.otlp_spans_in;

-- Last, the views the ingest table had until now (0015's plain stage and its route to the full stage), and the
-- functions only they used.
DROP VIEW IF EXISTS {{db}}.otlp_spans_in_mv {{on_cluster}};
DROP VIEW IF EXISTS {{db}}.otlp_spans_route_full_mv {{on_cluster}};
DROP FUNCTION IF EXISTS llmloopRawPlain {{on_cluster}};
DROP FUNCTION IF EXISTS llmloopPlainRequest {{on_cluster}};
