-- OTLP requests enter here. The collector inserts length-delimited Export*ServiceRequest messages
-- in ClickHouse's Protobuf format (schema generated from opentelemetry-proto, passed inline); these
-- Null tables keep nothing, and the materialized views below explode
-- resource -> scope -> span/log with arrayJoin into the stored tables. ClickHouse parses the
-- protobuf itself, so no per-span Python work happens on the ingest path.
-- Rows with ids of the wrong length never get here: the collector rejects them per span
-- (OTLP partial_success) before the insert.
-- Attribute limits the ingest views apply (written by the collector at start-up from its options;
-- the defaults below apply until then). Read once per insert by the views' scalar subqueries.
CREATE TABLE IF NOT EXISTS {{db}}.ingest_limits {{on_cluster}} (
    name LowCardinality(String),
    value UInt64,
    updated DateTime64(3) DEFAULT now64(3)
) ENGINE = {{replicated}}ReplacingMergeTree(updated)
ORDER BY name;

CREATE TABLE IF NOT EXISTS {{db}}.otlp_traces_in {{on_cluster}} (
    resource_spans Array(Tuple(
        resource Tuple(attributes {{otlp_attributes}}, dropped_attributes_count UInt32),
        scope_spans Array(Tuple(
            scope Tuple(name String, version String),
            spans Array(Tuple(
                trace_id String, span_id String, trace_state String, parent_span_id String,
                name String, kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64,
                attributes {{otlp_attributes}}, dropped_attributes_count UInt32,
                events Array(Tuple(time_unix_nano UInt64, name String, attributes {{otlp_attributes}},
                                   dropped_attributes_count UInt32)),
                links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {{otlp_attributes}},
                                  dropped_attributes_count UInt32)),
                status Tuple(message String, code Int32)))))))
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_traces_mv {{on_cluster}} TO {{db}}.spans AS
WITH
    ifNull((SELECT any(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_attributes'), 128) AS max_count,
    ifNull((SELECT any(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_value_length'), 1048576) AS max_length
SELECT
    fromUnixTimestamp64Nano(toInt64(least(span.start_time_unix_nano, 9223372036854775807))) AS Timestamp,
    lower(hex(span.trace_id)) AS TraceId,
    lower(hex(span.span_id)) AS SpanId,
    lower(hex(span.parent_span_id)) AS ParentSpanId,
    span.trace_state AS TraceState,
    span.name AS SpanName,
    -- Out-of-range enums read as the zero value; timestamps past DateTime64's range (year 2262) clamp.
    ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'][if(span.kind BETWEEN 0 AND 5, span.kind + 1, 1)] AS SpanKind,
    ResourceAttributes['service.name'] AS ServiceName,
    llmloopAttributes(resource_spans.resource.attributes, max_count, max_length,
                      resource_spans.resource.dropped_attributes_count) AS ResourceAttributes,
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
    SpanAttributes['gen_ai.provider.name'] AS Provider,
    SpanAttributes['gen_ai.operation.name'] AS Operation,
    SpanAttributes['gen_ai.request.model'] AS RequestModel,
    SpanAttributes['gen_ai.response.model'] AS ResponseModel,
    SpanAttributes['llmloop.config.id'] AS ConfigId,
    SpanAttributes['llmloop.config.fingerprint'] AS ConfigFingerprint,
    SpanAttributes['llmloop.rollout.name'] AS RolloutName,
    SpanAttributes['llmloop.rollout.arm'] AS RolloutArm,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.input_tokens']) AS InputTokens,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.output_tokens']) AS OutputTokens,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_read.input_tokens']) AS CacheReadTokens,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_write.input_tokens']) AS CacheWriteTokens,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.reasoning.output_tokens']) AS ReasoningTokens,
    toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']) AS TimeToFirstChunk,
    JSONExtract(SpanAttributes['gen_ai.response.finish_reasons'], 'Array(String)') AS FinishReasons,
    SpanAttributes['error.type'] AS ErrorType,
    SpanAttributes['gen_ai.conversation.id'] AS ConversationId,
    SpanAttributes['gen_ai.input.messages'] AS InputMessages,
    SpanAttributes['gen_ai.output.messages'] AS OutputMessages,
    SpanAttributes['gen_ai.system_instructions'] AS SystemInstructions
FROM {{db}}.otlp_traces_in
ARRAY JOIN resource_spans
ARRAY JOIN resource_spans.scope_spans AS scope_spans
ARRAY JOIN scope_spans.spans AS span;

CREATE TABLE IF NOT EXISTS {{db}}.otlp_logs_in {{on_cluster}} (
    resource_logs Array(Tuple(
        resource Tuple(attributes {{otlp_attributes}}, dropped_attributes_count UInt32),
        schema_url String,
        scope_logs Array(Tuple(
            scope Tuple(name String, version String, attributes {{otlp_attributes}}, dropped_attributes_count UInt32),
            schema_url String,
            log_records Array(Tuple(
                time_unix_nano UInt64, observed_time_unix_nano UInt64,
                severity_number Int32, severity_text String,
                body Tuple(
                    string_value Nullable(String), bool_value Nullable(Bool), int_value Nullable(Int64),
                    double_value Nullable(Float64), bytes_value Nullable(String),
                    array_value Tuple(values Array(Tuple(
                        string_value Nullable(String), bool_value Nullable(Bool), int_value Nullable(Int64),
                        double_value Nullable(Float64), bytes_value Nullable(String)))),
                    kvlist_value Tuple(values Array(Tuple(key String, value Tuple(
                        string_value Nullable(String), bool_value Nullable(Bool), int_value Nullable(Int64),
                        double_value Nullable(Float64), bytes_value Nullable(String)))))),
                attributes {{otlp_attributes}}, dropped_attributes_count UInt32,
                flags UInt32, trace_id String, span_id String, event_name String))))))
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_logs_mv {{on_cluster}} TO {{db}}.logs AS
WITH
    ifNull((SELECT any(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_attributes'), 128) AS max_count,
    ifNull((SELECT any(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_value_length'), 1048576) AS max_length
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
