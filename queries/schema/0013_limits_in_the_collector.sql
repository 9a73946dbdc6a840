-- Attribute limits move from the ingest views to the collector (collector/attributes.py), which
-- applies them to the decoded request before it is spooled: in the views they cost every span of every
-- insert (0009's capped maps: 6.8 us of CPU per span and 0.056 s per insert, measured in paired rounds,
-- bench/README.md, session 7), while the collector checks them on the pass it makes over every item
-- anyway and rewrites only the lists over a limit. The views now render each list as it comes; rows
-- inserted into the ingest tables by anything but the collector are not capped.
-- MODIFY QUERY swaps each view's query in place (as 0010 does): never a moment with no view or two.

-- An OTLP key/value list as Map(key, rendered value).
CREATE OR REPLACE FUNCTION llmloopAttributeMap {{on_cluster}} AS (kvs) ->
    CAST((arrayMap(kv -> tupleElement(kv, 'key'), kvs),
          arrayMap(kv -> llmloopAnyValueString(tupleElement(kv, 'value')), kvs)), 'Map(String, String)');

-- 0009's first stage, the lists uncapped.
ALTER TABLE {{db}}.otlp_spans_mv {{on_cluster}} MODIFY QUERY
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
    llmloopAttributeMap(span.attributes) AS SpanAttributes,
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
    FROM {{db}}.otlp_traces_in
    ARRAY JOIN resource_spans
)
ARRAY JOIN scopes AS scope_spans
ARRAY JOIN scope_spans.spans AS span;

-- 0010's logs view, the lists uncapped.
ALTER TABLE {{db}}.otlp_logs_mv {{on_cluster}} MODIFY QUERY
SELECT
    -- OTLP: when time_unix_nano is unset, the observed time stands in.
    fromUnixTimestamp64Nano(toInt64(least(if(rec.time_unix_nano = 0, rec.observed_time_unix_nano, rec.time_unix_nano),
                                          9223372036854775807))) AS Timestamp,
    lower(hex(rec.trace_id)) AS TraceId,
    lower(hex(rec.span_id)) AS SpanId,
    toUInt8(bitAnd(rec.flags, 255)) AS TraceFlags,
    rec.severity_text AS SeverityText,
    toUInt8(greatest(least(rec.severity_number, 255), 0)) AS SeverityNumber,
    ResourceAttributes['service.name'] AS ServiceName,
    llmloopAnyValueString(rec.body) AS Body,
    resource_logs.schema_url AS ResourceSchemaUrl,
    llmloopAttributeMap(resource_logs.resource.attributes) AS ResourceAttributes,
    scope_logs.schema_url AS ScopeSchemaUrl,
    scope_logs.scope.name AS ScopeName,
    scope_logs.scope.version AS ScopeVersion,
    llmloopAttributeMap(scope_logs.scope.attributes) AS ScopeAttributes,
    llmloopAttributeMap(rec.attributes) AS LogAttributes,
    rec.event_name AS EventName
FROM {{db}}.otlp_logs_in
ARRAY JOIN resource_logs
ARRAY JOIN resource_logs.scope_logs AS scope_logs
ARRAY JOIN scope_logs.log_records AS rec;

-- (ingest_limits stays, unread: a collector of an earlier version still writes its limits there at
-- start-up, and on a cluster upgraded one node at a time it must still start.)
