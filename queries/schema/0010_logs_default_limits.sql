-- 0004's logs view read the attribute limits with any(value). On a store whose ingest_limits is still
-- empty (migrated, but no collector has written its limits yet) that is 0, not NULL: the defaults did not
-- apply and every log attribute was dropped. Same view, the limits read with anyOrNull as 0009 does for spans.
-- MODIFY QUERY swaps the view's query in place: no moment with no view or with two (logs has no
-- deduplicating engine, so two views would store every record twice).
ALTER TABLE {{db}}.otlp_logs_mv {{on_cluster}} MODIFY QUERY
WITH
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_attributes'), 128) AS max_count,
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_value_length'), 1048576) AS max_length
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
    llmloopAttributes(resource_logs.resource.attributes, max_count, max_length,
                      resource_logs.resource.dropped_attributes_count) AS ResourceAttributes,
    scope_logs.schema_url AS ScopeSchemaUrl,
    scope_logs.scope.name AS ScopeName,
    scope_logs.scope.version AS ScopeVersion,
    llmloopAttributes(scope_logs.scope.attributes, max_count, max_length,
                      scope_logs.scope.dropped_attributes_count) AS ScopeAttributes,
    llmloopAttributes(rec.attributes, max_count, max_length, rec.dropped_attributes_count) AS LogAttributes,
    rec.event_name AS EventName
FROM {{db}}.otlp_logs_in
ARRAY JOIN resource_logs
ARRAY JOIN resource_logs.scope_logs AS scope_logs
ARRAY JOIN scope_logs.log_records AS rec;
