-- bench/stage_pairs.py's example variant: 0009's first stage (otlp_spans_mv) with no attribute limits,
-- each list a plain CAST of its rendered values. Not a pipeline to run: it stores over-limit spans uncapped.
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
    CAST((arrayMap(kv -> kv.key, span.attributes), arrayMap(kv -> llmloopAnyValueString(kv.value), span.attributes)), 'Map(String, String)') AS SpanAttributes,
    if(span.end_time_unix_nano > span.start_time_unix_nano,
       span.end_time_unix_nano - span.start_time_unix_nano, 0) AS Duration,
    ['Unset', 'Ok', 'Error'][if(span.status.code BETWEEN 0 AND 2, span.status.code + 1, 1)] AS StatusCode,
    span.status.message AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(least(e.time_unix_nano, 9223372036854775807))), span.events) AS `Events.Timestamp`,
    arrayMap(e -> e.name, span.events) AS `Events.Name`,
    arrayMap(e -> CAST((arrayMap(kv -> kv.key, e.attributes), arrayMap(kv -> llmloopAnyValueString(kv.value), e.attributes)), 'Map(String, String)'), span.events)
        AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), span.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), span.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, span.links) AS `Links.TraceState`,
    arrayMap(l -> CAST((arrayMap(kv -> kv.key, l.attributes), arrayMap(kv -> llmloopAnyValueString(kv.value), l.attributes)), 'Map(String, String)'), span.links)
        AS `Links.Attributes`,
    arrayExists(k -> k IN (SELECT key FROM {{db}}.conventions FINAL
                           WHERE mapping = 'foreign_key' AND generation = generation_), span_keys_)
    OR multiSearchAny(concat('\n', arrayStringConcat(span_keys_, '\n')), foreign_prefixes)
    OR empty(foreign_prefixes)
    OR hasAny(arrayMap(e -> e.name, span.events), ['gen_ai.client.inference.operation.details', 'gen_ai.content.prompt',
                                                   'gen_ai.content.completion']) AS Foreign
FROM (
    SELECT
        CAST((arrayMap(kv -> kv.key, resource_spans.resource.attributes), arrayMap(kv -> llmloopAnyValueString(kv.value), resource_spans.resource.attributes)), 'Map(String, String)') AS resource_attributes,
        resource_spans.scope_spans AS scopes
    FROM {{db}}.otlp_traces_in
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span
