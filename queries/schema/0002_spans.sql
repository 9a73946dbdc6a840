-- Spans, in the OTel Collector clickhouseexporter's otel_traces layout (same column names and
-- types, so otel_traces queries and Grafana's OTel mode work unchanged), plus typed GenAI columns
-- filled at ingest from gen_ai.* / llmloop.* attributes.
--
-- Layout choices:
-- * PARTITION BY day: retention drops whole parts (ttl_only_drop_parts), and every loop query is
--   bounded in time, so old partitions are skipped without reading their indexes.
-- * ORDER BY starts with ConfigId, then the hour: the loop's queries (judge sampling, the gate,
--   cost per config) ask "config X (or X vs Y) over window W" and read only those granules. Non-GenAI
--   spans share ConfigId = '' and are then ordered by time, as in otel_traces.
--   ServiceName, then TraceId keep a trace's spans together inside the hour (good compression,
--   trace-by-id reads touch few granules); SpanId ends the key so one span has one sort position.
-- * Trace-by-id lookups without a time range use the bloom filter on TraceId. Unlike otel_traces,
--   SpanAttributes has no key/value bloom filters: building them for ~25 attributes per GenAI span
--   cost about a third of ingest throughput, and the loop filters on the typed columns instead.
--   Resource attributes (few per span) keep theirs.
-- * Duplicates: OTLP clients retry, so one span can arrive twice. Two mechanisms, both needed:
--   - the collector inserts each spool segment with an insert_deduplication_token, so a segment
--     replayed after a crash is dropped whole by ClickHouse (non_replicated_deduplication_window);
--   - a span re-sent in a *different* request (client retry after a lost response) is a second row
--     with the same sort key (the key ends in TraceId, SpanId), which ReplacingMergeTree collapses
--     at merge time. Until then, queries that must count a span once read `FROM llmloop.spans FINAL`
--     (cheap here: partitions are merged independently) or count uniqExact(TraceId, SpanId).
--   The trade-off: FINAL costs some read speed; in exchange ingest stays append-only, no lookups.
-- * Payload columns (messages, system instructions) carry their own TTL so content can expire
--   long before the metrics beside it.
CREATE TABLE IF NOT EXISTS {{db}}.spans{{local}} {{on_cluster}} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    -- GenAI: one meaning per column, whatever convention the span used.
    Provider LowCardinality(String) CODEC(ZSTD(1)),           -- gen_ai.provider.name
    Operation LowCardinality(String) CODEC(ZSTD(1)),          -- gen_ai.operation.name
    RequestModel LowCardinality(String) CODEC(ZSTD(1)),       -- gen_ai.request.model
    ResponseModel LowCardinality(String) CODEC(ZSTD(1)),      -- gen_ai.response.model
    ConfigId LowCardinality(String) CODEC(ZSTD(1)),           -- llmloop.config.id
    ConfigFingerprint LowCardinality(String) CODEC(ZSTD(1)),  -- llmloop.config.fingerprint
    RolloutName LowCardinality(String) CODEC(ZSTD(1)),        -- llmloop.rollout.name
    RolloutArm LowCardinality(String) CODEC(ZSTD(1)),         -- llmloop.rollout.arm: control | canary | shadow
    -- Token counts are NULL when the span did not report them (not the same as 0).
    InputTokens Nullable(UInt64) CODEC(ZSTD(1)),              -- gen_ai.usage.input_tokens
    OutputTokens Nullable(UInt64) CODEC(ZSTD(1)),             -- gen_ai.usage.output_tokens
    CacheReadTokens Nullable(UInt64) CODEC(ZSTD(1)),          -- gen_ai.usage.cache_read.input_tokens
    CacheWriteTokens Nullable(UInt64) CODEC(ZSTD(1)),         -- gen_ai.usage.cache_write.input_tokens
    ReasoningTokens Nullable(UInt64) CODEC(ZSTD(1)),          -- gen_ai.usage.reasoning.output_tokens
    TimeToFirstChunk Nullable(Float64) CODEC(ZSTD(1)),        -- gen_ai.response.time_to_first_chunk, seconds
    FinishReasons Array(LowCardinality(String)) CODEC(ZSTD(1)), -- gen_ai.response.finish_reasons
    ErrorType LowCardinality(String) CODEC(ZSTD(1)),          -- error.type
    ConversationId String CODEC(ZSTD(1)),                     -- gen_ai.conversation.id
    -- Opt-in content (JSON text), expiring before the metrics.
    InputMessages String CODEC(ZSTD(3)) {{payload_ttl}},       -- gen_ai.input.messages
    OutputMessages String CODEC(ZSTD(3)) {{payload_ttl}},      -- gen_ai.output.messages
    SystemInstructions String CODEC(ZSTD(3)) {{payload_ttl}},  -- gen_ai.system_instructions
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_fingerprint ConfigFingerprint TYPE set(100) GRANULARITY 4,
    INDEX idx_request_model RequestModel TYPE set(100) GRANULARITY 4
) ENGINE = {{replicated}}ReplacingMergeTree
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ConfigId, toStartOfHour(Timestamp))
ORDER BY (ConfigId, toStartOfHour(Timestamp), ServiceName, TraceId, SpanId)
{{ttl}}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;

-- if cluster
CREATE TABLE IF NOT EXISTS {{db}}.spans {{on_cluster}} AS {{db}}.spans_local
ENGINE = Distributed({{cluster}}, {{db}}, spans_local, cityHash64(TraceId));
-- end
