-- GenAI events that arrive as OTLP logs, and `genai_calls`: one row per model call with its cost.
--
-- Some instrumentations put message content only in log events tied to the call's span: the old
-- per-message events (gen_ai.{system,user,assistant,tool}.message, gen_ai.choice; name in the
-- `event.name` attribute, content in the body) and the newer gen_ai.client.inference.operation.details
-- (messages as attributes). A view on `logs` turns each into messages in our JSON shape, keyed by
-- the span, and `genai_calls` uses them where the span has none. Rows are content, so they expire
-- with the payload TTL.
CREATE TABLE IF NOT EXISTS {{db}}.genai_event_messages{{local}} {{on_cluster}} (
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    Kind LowCardinality(String),   -- input | output | system
    Messages String CODEC(ZSTD(3)),  -- a JSON array (of messages; of parts for system)
    FinishReasons Array(LowCardinality(String))
) ENGINE = {{replicated}}ReplacingMergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (TraceId, SpanId, Kind, Timestamp, cityHash64(Messages))
{{payload_ttl}}
SETTINGS ttl_only_drop_parts = 1;

-- if cluster
CREATE TABLE IF NOT EXISTS {{db}}.genai_event_messages {{on_cluster}} AS {{db}}.genai_event_messages_local
ENGINE = Distributed({{cluster}}, {{db}}, genai_event_messages_local, cityHash64(TraceId));
-- end

-- The JSON arrays of one span's events, in time order, joined into one array.
CREATE FUNCTION IF NOT EXISTS llmloopEventMessages {{on_cluster}} AS (events) ->
    if(empty(events), '',
       concat('[', arrayStringConcat(arrayFilter(x -> x != '', arrayMap(e -> substring(e.2, 2, length(e.2) - 2),
                                                                   arraySort(e -> e.1, events))), ','), ']'));

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.genai_event_messages_mv {{on_cluster}} TO {{db}}.genai_event_messages AS
SELECT TraceId, SpanId, Timestamp, message.1 AS Kind, message.2 AS Messages, message.3 AS FinishReasons
FROM (
    SELECT TraceId, SpanId, Timestamp, Body, LogAttributes,
           if(EventName != '', EventName, LogAttributes['event.name']) AS event
    FROM {{db}}.logs
    WHERE TraceId != '' AND event IN ('gen_ai.system.message', 'gen_ai.user.message', 'gen_ai.assistant.message',
                                      'gen_ai.tool.message', 'gen_ai.choice', 'gen_ai.client.inference.operation.details'))
ARRAY JOIN arrayFilter(m -> m.2 NOT IN ('', '[]'), multiIf(
    event = 'gen_ai.client.inference.operation.details',
        [('input', LogAttributes['gen_ai.input.messages'], CAST([], 'Array(String)')),
         ('output', LogAttributes['gen_ai.output.messages'],
          arrayMap(m -> JSONExtractString(m, 'finish_reason'), JSONExtractArrayRaw(LogAttributes['gen_ai.output.messages']))),
         ('system', LogAttributes['gen_ai.system_instructions'], CAST([], 'Array(String)'))],
    event = 'gen_ai.choice',
        [('output', llmloopMessages([llmloopMessage(
             if(JSONExtractString(Body, 'message', 'role') != '', JSONExtractString(Body, 'message', 'role'), 'assistant'),
             llmloopJsonParts(JSONExtractRaw(Body, 'message')), JSONExtractString(Body, 'finish_reason'))]),
          [JSONExtractString(Body, 'finish_reason')])],
    event = 'gen_ai.tool.message',
        [('input', llmloopMessages([llmloopMessage('tool',
             [llmloopToolResponsePart(JSONExtractString(Body, 'id'),
                                      if(JSONType(Body, 'content') = 'String', JSONExtractString(Body, 'content'),
                                         JSONExtractRaw(Body, 'content')))], '')]),
          CAST([], 'Array(String)'))],
        [('input', llmloopMessages([llmloopMessage(
             if(JSONExtractString(Body, 'role') != '', JSONExtractString(Body, 'role'),
                splitByChar('.', event)[2]),
             llmloopJsonParts(Body), '')]),
          CAST([], 'Array(String)'))])) AS message;

-- Every GenAI model call, each span once (FINAL), with its cost in USD, and its messages from GenAI
-- log events when the span itself carries none. The cost a span carries
-- (gen_ai.usage.cost or a foreign alias, e.g. OpenInference's llm.cost.total) wins; otherwise
-- tokens x the price in force on the span's date: uncached input, cache reads, cache writes (1-hour
-- writes at their own price when the span reports them), output (reasoning tokens are inside it,
-- at the reasoning price when one is set). Unknown model: NULL (see queries/analysis/unpriced_models.sql).
-- Wrapper spans that are not model calls themselves (agents, workflows, tools) are left out so
-- tokens are not counted twice; so is a span of a `duplicate_source` scope (the Anthropic SDK's own
-- tracing) when another instrumentation's span reports the same response id: one call, one row.
CREATE VIEW IF NOT EXISTS {{db}}.genai_calls {{on_cluster}} AS
WITH
    (SELECT CAST((groupArray(key), groupArray(targets)), 'Map(String, Array(String))') FROM {{db}}.conventions FINAL
     WHERE mapping = 'attribute' AND generation = (SELECT max(generation) FROM {{db}}.conventions)) AS aliases,
    (SELECT groupArray(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'duplicate_source' AND generation = (SELECT max(generation) FROM {{db}}.conventions))
        AS duplicate_sources,
    toDate(Timestamp) AS day_,
    llmloopPriceKey(if(ResponseModel != '', ResponseModel, RequestModel), Provider, day_) AS price_key_,
    toFloat64(ifNull(CacheReadTokens, 0)) AS cache_read_,
    toFloat64(ifNull(toUInt64OrNull(llmloopPick(SpanAttributes, 'llmloop.usage.cache_write_1h.input_tokens', aliases)), 0))
        AS cache_write_1h_,
    toFloat64(ifNull(CacheWriteTokens, 0)) - cache_write_1h_ AS cache_write_5m_,
    dictGet('{{db}}.prices_dict', 'input', price_key_, day_) AS p_input_,
    dictGet('{{db}}.prices_dict', 'output', price_key_, day_) AS p_output_,
    coalesce(dictGet('{{db}}.prices_dict', 'cache_read', price_key_, day_), p_input_) AS p_cache_read_,
    coalesce(dictGet('{{db}}.prices_dict', 'cache_write', price_key_, day_), p_input_) AS p_cache_write_,
    coalesce(dictGet('{{db}}.prices_dict', 'cache_write_1h', price_key_, day_), p_cache_write_) AS p_cache_write_1h_,
    coalesce(dictGet('{{db}}.prices_dict', 'reasoning', price_key_, day_), p_output_) AS p_reasoning_
SELECT
    Timestamp, s.TraceId AS TraceId, s.SpanId AS SpanId, ParentSpanId, SpanName, ServiceName, ScopeName, ScopeVersion, Duration,
    StatusCode, StatusMessage, Provider, Operation, RequestModel, ResponseModel, ResponseId, ConfigId,
    ConfigFingerprint,
    RolloutName, RolloutArm, InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, ReasoningTokens,
    TimeToFirstChunk, if(empty(s.FinishReasons), ev.FinishReasons, s.FinishReasons) AS FinishReasons, ErrorType,
    ConversationId,
    if(s.InputMessages != '', s.InputMessages, ev.InputMessages) AS InputMessages,
    if(s.OutputMessages != '', s.OutputMessages, ev.OutputMessages) AS OutputMessages,
    if(s.SystemInstructions != '', s.SystemInstructions, ev.SystemInstructions) AS SystemInstructions,
    SpanAttributes, ResourceAttributes,
    price_key_.1 AS PriceModel,
    coalesce(
        toFloat64OrNull(llmloopPick(SpanAttributes, 'gen_ai.usage.cost', aliases)),
        if(price_key_.1 = '' OR (InputTokens IS NULL AND OutputTokens IS NULL), NULL,
           (greatest(toFloat64(ifNull(InputTokens, 0)) - cache_read_ - cache_write_5m_ - cache_write_1h_, 0) * p_input_
            + cache_read_ * p_cache_read_ + cache_write_5m_ * p_cache_write_ + cache_write_1h_ * p_cache_write_1h_
            + toFloat64(ifNull(OutputTokens, 0)) * p_output_
            + toFloat64(ifNull(ReasoningTokens, 0)) * (p_reasoning_ - p_output_)) / 1e6)) AS CostUsd
FROM {{db}}.spans AS s FINAL
LEFT JOIN (
    SELECT TraceId, SpanId,
           llmloopEventMessages(groupArrayIf((Timestamp, Messages), Kind = 'input')) AS InputMessages,
           llmloopEventMessages(groupArrayIf((Timestamp, Messages), Kind = 'output')) AS OutputMessages,
           llmloopEventMessages(groupArrayIf((Timestamp, Messages), Kind = 'system')) AS SystemInstructions,
           arrayFlatten(groupArrayIf(FinishReasons, Kind = 'output')) AS FinishReasons
    FROM {{db}}.genai_event_messages FINAL
    GROUP BY TraceId, SpanId) AS ev ON s.TraceId = ev.TraceId AND s.SpanId = ev.SpanId
WHERE (RequestModel != '' OR ResponseModel != '')
  AND Operation NOT IN ('invoke_agent', 'invoke_workflow', 'create_agent', 'execute_tool')
  AND NOT (has(duplicate_sources, ScopeName) AND ResponseId != ''
           AND ResponseId IN (SELECT ResponseId FROM {{db}}.spans
                              WHERE ResponseId != '' AND NOT has(duplicate_sources, ScopeName)));
