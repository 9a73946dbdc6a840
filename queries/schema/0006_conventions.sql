-- Foreign GenAI conventions mapped onto the typed columns at ingest.
--
-- Spans from OpenLLMetry, OpenInference, the OTel GenAI instrumentations (old and new names), the
-- Anthropic SDK's native tracing and the Vercel AI SDK land in the same typed columns as our own.
-- Two kinds of mapping:
-- * renames and value spellings are data: `conventions`, loaded by the collector at start-up from
--   llmloop.semconv.mapping (each start writes a new generation; the view reads the newest);
-- * structure (flattened messages, events, request/response JSON) is the functions below.
-- Every mapped attribute stays in SpanAttributes as it came (full fidelity).
CREATE TABLE IF NOT EXISTS {{db}}.conventions {{on_cluster}} (
    mapping LowCardinality(String),   -- which table of llmloop.semconv.mapping (see mapping.tables())
    key String,
    targets Array(String),
    generation UInt64
) ENGINE = {{replicated}}ReplacingMergeTree(generation)
ORDER BY (mapping, key);

-- The value of `key`, else of the first of its foreign aliases present in `attrs`.
CREATE FUNCTION IF NOT EXISTS llmloopPick {{on_cluster}} AS (attrs, key, aliases) ->
    attrs[arrayFirst(k -> mapContains(attrs, k), arrayConcat([key], aliases[key]))];

-- The first non-empty field of a JSON attribute among `paths` (`key#field`, e.g. `llm.invocation_parameters#model`).
CREATE FUNCTION IF NOT EXISTS llmloopPickJson {{on_cluster}} AS (attrs, paths) ->
    arrayFirst(v -> v != '', arrayMap(p -> JSONExtractString(attrs[splitByChar('#', p)[1]], splitByChar('#', p)[2]),
                                      paths));

-- A provider name as the spec spells it: the mapped value, else the mapped first dotted part
-- (`openai.chat` -> `openai`), else the value in lower case.
CREATE FUNCTION IF NOT EXISTS llmloopProvider {{on_cluster}} AS (raw, providers) ->
    if(raw = '', '',
       if(mapContains(providers, lower(raw)), providers[lower(raw)],
          if(mapContains(providers, splitByChar('.', lower(raw))[1]), providers[splitByChar('.', lower(raw))[1]],
             lower(raw))));

-- Message parts and messages in the JSON shape of the OTel GenAI convention
-- (gen-ai-input-messages.json / gen-ai-output-messages.json).
CREATE FUNCTION IF NOT EXISTS llmloopTextPart {{on_cluster}} AS (text) ->
    concat('{"type":"text","content":', toJSONString(text), '}');

CREATE FUNCTION IF NOT EXISTS llmloopToolCallPart {{on_cluster}} AS (id, name, arguments) ->
    concat('{"type":"tool_call","id":', toJSONString(id), ',"name":', toJSONString(name), ',"arguments":',
           if(arguments = '', 'null', if(isValidJSON(arguments), arguments, toJSONString(arguments))), '}');

CREATE FUNCTION IF NOT EXISTS llmloopToolResponsePart {{on_cluster}} AS (id, response) ->
    concat('{"type":"tool_call_response","id":', toJSONString(id), ',"response":',
           if(response = '', 'null', if(isValidJSON(response), response, toJSONString(response))), '}');

CREATE FUNCTION IF NOT EXISTS llmloopMessage {{on_cluster}} AS (role, parts, finish_reason) ->
    concat('{"role":', toJSONString(role), ',"parts":[', arrayStringConcat(parts, ','), ']',
           if(finish_reason = '', '', concat(',"finish_reason":', toJSONString(finish_reason))), '}');

CREATE FUNCTION IF NOT EXISTS llmloopMessages {{on_cluster}} AS (messages) ->
    if(empty(messages), '', concat('[', arrayStringConcat(messages, ','), ']'));

-- Flattened messages (`prefix.N.role`, `prefix.N.content`, ...): the distinct indices N present,
-- ascending, at most `limit` of them, so `gen_ai.prompt.9999.content` costs one message, not 10,000.
CREATE FUNCTION IF NOT EXISTS llmloopFlatIndices {{on_cluster}} AS (keys, prefix, limit) ->
    arraySlice(arraySort(arrayDistinct(arrayMap(i -> assumeNotNull(i), arrayFilter(i -> i IS NOT NULL,
        arrayMap(k -> toUInt32OrNull(splitByChar('.', substring(k, length(prefix) + 1))[1]),
                 arrayFilter(k -> startsWith(k, prefix), keys)))))), 1, limit);

-- One flattened convention, described by its field names: role, content, content parts (index
-- prefix + text field), tool calls (index prefix + id/name/arguments fields), finish reason.
CREATE FUNCTION IF NOT EXISTS llmloopFlatMessages {{on_cluster}} AS
    (attrs, prefix, f_role, f_content, f_parts, f_text, f_calls, f_id, f_name, f_args, f_finish) ->
    llmloopMessages(arrayMap(p -> llmloopMessage(
            attrs[concat(p, f_role)],
            arrayConcat(
                if(attrs[concat(p, f_content)] = '', [], [llmloopTextPart(attrs[concat(p, f_content)])]),
                arrayMap(t -> llmloopTextPart(t), arrayFilter(t -> t != '', arrayMap(
                    j -> attrs[concat(p, f_parts, toString(j), f_text)],
                    if(f_parts = '', [], llmloopFlatIndices(mapKeys(attrs), concat(p, f_parts), 100))))),
                arrayMap(j -> llmloopToolCallPart(attrs[concat(p, f_calls, toString(j), f_id)],
                                                  attrs[concat(p, f_calls, toString(j), f_name)],
                                                  attrs[concat(p, f_calls, toString(j), f_args)]),
                         llmloopFlatIndices(mapKeys(attrs), concat(p, f_calls), 100))),
            attrs[concat(p, f_finish)]),
        arrayMap(i -> concat(prefix, toString(i), '.'), llmloopFlatIndices(mapKeys(attrs), prefix, 1000))));

-- OpenLLMetry: gen_ai.prompt.N.{role,content}, gen_ai.completion.N.{role,content,finish_reason,
-- tool_calls.M.{id,name,arguments}}.
CREATE FUNCTION IF NOT EXISTS llmloopOpenLLMetryMessages {{on_cluster}} AS (attrs, prefix) ->
    llmloopFlatMessages(attrs, prefix, 'role', 'content', '', '', 'tool_calls.', '.id', '.name', '.arguments',
                        'finish_reason');

-- OpenInference: llm.{input,output}_messages.N.message.{role,content,contents.M.message_content.text,
-- tool_calls.M.tool_call.{id,function.name,function.arguments}}.
CREATE FUNCTION IF NOT EXISTS llmloopOpenInferenceMessages {{on_cluster}} AS (attrs, prefix) ->
    llmloopFlatMessages(attrs, prefix, 'message.role', 'message.content', 'message.contents.',
                        '.message_content.text', 'message.tool_calls.', '.tool_call.id', '.tool_call.function.name',
                        '.tool_call.function.arguments', 'message.finish_reason');

-- The parts of one chat message given as provider-style JSON: content as a string or as blocks
-- (Anthropic text / tool_use / tool_result, OpenAI text parts, Vercel text / tool-call parts) and
-- OpenAI tool_calls.
CREATE FUNCTION IF NOT EXISTS llmloopJsonParts {{on_cluster}} AS (m) ->
    arrayConcat(
        if(JSONType(m, 'content') = 'String' AND JSONExtractString(m, 'content') != '',
           [llmloopTextPart(JSONExtractString(m, 'content'))], []),
        arrayFilter(x -> x != '', arrayMap(b -> multiIf(
            JSONExtractString(b, 'type') IN ('text', 'input_text', 'output_text'),
                llmloopTextPart(JSONExtractString(b, 'text')),
            JSONExtractString(b, 'type') = 'tool_use',
                llmloopToolCallPart(JSONExtractString(b, 'id'), JSONExtractString(b, 'name'), JSONExtractRaw(b, 'input')),
            JSONExtractString(b, 'type') = 'tool-call',
                llmloopToolCallPart(JSONExtractString(b, 'toolCallId'), JSONExtractString(b, 'toolName'),
                                    if(JSONHas(b, 'input'), JSONExtractRaw(b, 'input'), JSONExtractRaw(b, 'args'))),
            JSONExtractString(b, 'type') = 'tool_result',
                llmloopToolResponsePart(JSONExtractString(b, 'tool_use_id'), JSONExtractRaw(b, 'content')),
            JSONExtractString(b, 'type') = 'tool-result',
                llmloopToolResponsePart(JSONExtractString(b, 'toolCallId'),
                                        if(JSONHas(b, 'output'), JSONExtractRaw(b, 'output'), JSONExtractRaw(b, 'result'))),
            ''),
            arraySlice(JSONExtractArrayRaw(m, 'content'), 1, 100))),
        arrayMap(c -> llmloopToolCallPart(JSONExtractString(c, 'id'), JSONExtractString(c, 'function', 'name'),
                                          JSONExtractString(c, 'function', 'arguments')),
                 arraySlice(JSONExtractArrayRaw(m, 'tool_calls'), 1, 100)));

-- A JSON array of provider-style chat messages ({"role", "content", "tool_calls"?}) in our shape.
CREATE FUNCTION IF NOT EXISTS llmloopJsonMessages {{on_cluster}} AS (json) ->
    llmloopMessages(arrayMap(m -> llmloopMessage(JSONExtractString(m, 'role'), llmloopJsonParts(m), ''),
                             arraySlice(JSONExtractArrayRaw(json), 1, 1000)));

-- A provider response body as output messages: OpenAI chat (choices[].message + finish_reason) or
-- an Anthropic message (role, content blocks, stop_reason).
CREATE FUNCTION IF NOT EXISTS llmloopJsonResponse {{on_cluster}} AS (json) ->
    if(JSONHas(json, 'choices'),
       llmloopMessages(arrayMap(c -> llmloopMessage(JSONExtractString(c, 'message', 'role'),
                                                    llmloopJsonParts(JSONExtractRaw(c, 'message')),
                                                    JSONExtractString(c, 'finish_reason')),
                                arraySlice(JSONExtractArrayRaw(json, 'choices'), 1, 100))),
       if(JSONHas(json, 'role') AND JSONHas(json, 'content'),
          llmloopMessages([llmloopMessage(JSONExtractString(json, 'role'), llmloopJsonParts(json),
                                          JSONExtractString(json, 'stop_reason'))]),
          ''));

-- System instructions given as a string or as text blocks, in our shape (a JSON array of parts).
CREATE FUNCTION IF NOT EXISTS llmloopJsonInstructions {{on_cluster}} AS (value) ->
    multiIf(value = '', '',
            isValidJSON(value) AND JSONType(value) = 'Array',
                concat('[', arrayStringConcat(arrayMap(b -> llmloopTextPart(JSONExtractString(b, 'text')),
                                                       arraySlice(JSONExtractArrayRaw(value), 1, 100)), ','), ']'),
            concat('[', llmloopTextPart(value), ']'));

-- The attribute `key` of the first span event named `name` ('' if none).
CREATE FUNCTION IF NOT EXISTS llmloopEventAttribute {{on_cluster}} AS (names, attributes, name, key) ->
    if(has(names, name), attributes[indexOf(names, name)][key], '');

-- Is a span in a foreign convention? One of its attribute keys matches the pattern the collector
-- builds from llmloop.semconv.mapping (every foreign key and flattened-message prefix), or it has
-- message events. Before the first load the pattern is '' and every span counts as foreign.
CREATE FUNCTION IF NOT EXISTS llmloopForeign {{on_cluster}} AS (attrs, event_names, pattern) ->
    arrayExists(k -> match(k, pattern), mapKeys(attrs))
    OR hasAny(event_names, ['gen_ai.client.inference.operation.details', 'gen_ai.content.prompt',
                            'gen_ai.content.completion']);

-- The provider's response id, typed: two instrumentations tracing one call (the Anthropic SDK's
-- own spans beside a third-party library's) report the same one, and genai_calls counts it once.
ALTER TABLE {{db}}.spans{{local}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS ResponseId String CODEC(ZSTD(1)) AFTER ResponseModel;

-- if cluster
ALTER TABLE {{db}}.spans {{on_cluster}} ADD COLUMN IF NOT EXISTS ResponseId String AFTER ResponseModel;
-- end

-- Ingest in stages, so the mapping costs only the spans that need it (evaluating its expressions
-- costs more than the rest of the insert, even for spans it then discards):
-- 1. otlp_traces_in -> spans_staging (Null): the OTel columns, as 0004 computed them.
-- 2. spans_staging -> spans by `spans_direct_mv` for spans in our names and the newest OTel ones
--    (typed columns read straight from them); spans in a foreign convention are passed on to
--    spans_foreign (Null) by `spans_foreign_mv`, unchanged.
-- 3. spans_foreign -> spans by `spans_mapped_mv`: renames, value spellings, units, flattened
--    messages, events. With no foreign span in an insert it has nothing to compute.
CREATE TABLE IF NOT EXISTS {{db}}.spans_staging {{on_cluster}} AS {{db}}.spans{{local}} ENGINE = Null;

CREATE TABLE IF NOT EXISTS {{db}}.spans_foreign {{on_cluster}} AS {{db}}.spans{{local}} ENGINE = Null;

DROP VIEW IF EXISTS {{db}}.otlp_traces_mv {{on_cluster}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.otlp_traces_mv {{on_cluster}} TO {{db}}.spans_staging AS
WITH
    -- (anyOrNull: with no row yet, the defaults apply rather than 0)
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_attributes'), 128) AS max_count,
    ifNull((SELECT anyOrNull(value) FROM {{db}}.ingest_limits FINAL WHERE name = 'max_value_length'), 1048576)
        AS max_length
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
        AS `Links.Attributes`
FROM {{db}}.otlp_traces_in
ARRAY JOIN resource_spans
ARRAY JOIN resource_spans.scope_spans AS scope_spans
ARRAY JOIN scope_spans.spans AS span;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_direct_mv {{on_cluster}} TO {{db}}.spans AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT any(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_pattern' AND generation = generation_) AS foreign_pattern,
    (SELECT groupArray(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'input_excludes_cache' AND generation = generation_) AS input_excludes_cache,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_read.input_tokens']) AS cache_read_,
    toUInt64OrNull(SpanAttributes['gen_ai.usage.cache_write.input_tokens']) AS cache_write_
SELECT * REPLACE (
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
    SpanAttributes['gen_ai.system_instructions'] AS SystemInstructions)
FROM {{db}}.spans_staging
WHERE NOT llmloopForeign(SpanAttributes, `Events.Name`, foreign_pattern);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_foreign_mv {{on_cluster}} TO {{db}}.spans_foreign AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT any(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'foreign_pattern' AND generation = generation_) AS foreign_pattern
SELECT *
FROM {{db}}.spans_staging
WHERE llmloopForeign(SpanAttributes, `Events.Name`, foreign_pattern);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.spans_mapped_mv {{on_cluster}} TO {{db}}.spans AS
WITH
    (SELECT max(generation) FROM {{db}}.conventions) AS generation_,
    (SELECT CAST((groupArray(key), groupArray(targets)), 'Map(String, Array(String))') FROM {{db}}.conventions FINAL
     WHERE mapping = 'attribute' AND generation = generation_) AS aliases,
    (SELECT CAST((groupArray(key), groupArray(targets)), 'Map(String, Array(String))') FROM {{db}}.conventions FINAL
     WHERE mapping = 'millisecond_attribute' AND generation = generation_) AS ms_aliases,
    (SELECT CAST((groupArray(key), groupArray(targets[1])), 'Map(String, String)') FROM {{db}}.conventions FINAL
     WHERE mapping = 'provider' AND generation = generation_) AS providers,
    (SELECT CAST((groupArray(key), groupArray(targets[1])), 'Map(String, String)') FROM {{db}}.conventions FINAL
     WHERE mapping = 'operation' AND generation = generation_) AS operations,
    (SELECT CAST((groupArray(key), groupArray(targets[1])), 'Map(String, String)') FROM {{db}}.conventions FINAL
     WHERE mapping = 'span_operation' AND generation = generation_) AS span_operations,
    (SELECT CAST((groupArray(key), groupArray(targets)), 'Map(String, Array(String))') FROM {{db}}.conventions FINAL
     WHERE mapping = 'json_attribute' AND generation = generation_) AS json_aliases,
    (SELECT groupArray(key) FROM {{db}}.conventions FINAL
     WHERE mapping = 'input_excludes_cache' AND generation = generation_) AS input_excludes_cache,
    -- What the typed columns read: the span's attributes over those of the newer operation-details
    -- event, which carries the call's attributes (incl. messages) when the span does not.
    mapConcat(
        if(has(`Events.Name`, 'gen_ai.client.inference.operation.details'),
           `Events.Attributes`[indexOf(`Events.Name`, 'gen_ai.client.inference.operation.details')],
           map()),
        SpanAttributes) AS attrs_,
    llmloopPick(attrs_, 'gen_ai.operation.name', aliases) AS operation_,
    toUInt64OrNull(llmloopPick(attrs_, 'gen_ai.usage.cache_read.input_tokens', aliases)) AS cache_read_,
    toUInt64OrNull(llmloopPick(attrs_, 'gen_ai.usage.cache_write.input_tokens', aliases)) AS cache_write_
SELECT * REPLACE (
    llmloopProvider(llmloopPick(attrs_, 'gen_ai.provider.name', aliases), providers) AS Provider,
    multiIf(attrs_['gen_ai.operation.name'] != '', attrs_['gen_ai.operation.name'],
            mapContains(span_operations, SpanName), span_operations[SpanName],
            mapContains(operations, operation_), operations[operation_],
            operation_) AS Operation,
    if(llmloopPick(attrs_, 'gen_ai.request.model', aliases) != '', llmloopPick(attrs_, 'gen_ai.request.model', aliases),
       llmloopPickJson(attrs_, json_aliases['gen_ai.request.model'])) AS RequestModel,
    llmloopPick(attrs_, 'gen_ai.response.model', aliases) AS ResponseModel,
    llmloopPick(attrs_, 'llmloop.config.id', aliases) AS ConfigId,
    attrs_['llmloop.config.fingerprint'] AS ConfigFingerprint,
    llmloopPick(attrs_, 'llmloop.rollout.name', aliases) AS RolloutName,
    llmloopPick(attrs_, 'llmloop.rollout.arm', aliases) AS RolloutArm,
    -- InputTokens includes cache reads and writes (the OTel convention); sources listed in
    -- input_excludes_cache report Anthropic's uncached count, so their cache counts are added.
    toUInt64OrNull(llmloopPick(attrs_, 'gen_ai.usage.input_tokens', aliases))
        + if(has(input_excludes_cache, ScopeName), ifNull(cache_read_, 0) + ifNull(cache_write_, 0), 0) AS InputTokens,
    toUInt64OrNull(llmloopPick(attrs_, 'gen_ai.usage.output_tokens', aliases)) AS OutputTokens,
    cache_read_ AS CacheReadTokens,
    cache_write_ AS CacheWriteTokens,
    toUInt64OrNull(llmloopPick(attrs_, 'gen_ai.usage.reasoning.output_tokens', aliases)) AS ReasoningTokens,
    coalesce(
        toFloat64OrNull(attrs_['gen_ai.response.time_to_first_chunk']),
        -- (reached only when the canonical key is absent, so the pick is one of the millisecond aliases)
        toFloat64OrNull(llmloopPick(attrs_, 'gen_ai.response.time_to_first_chunk', ms_aliases)) / 1000,
        -- OpenInference marks the first streamed token with an event.
        if(has(`Events.Name`, 'First Token Stream Event'),
           toFloat64(dateDiff('nanosecond', Timestamp, `Events.Timestamp`[indexOf(`Events.Name`, 'First Token Stream Event')])) / 1e9,
           NULL)) AS TimeToFirstChunk,
    arrayFilter(r -> r != '', multiIf(
        startsWith(llmloopPick(attrs_, 'gen_ai.response.finish_reasons', aliases), '['),
            JSONExtract(llmloopPick(attrs_, 'gen_ai.response.finish_reasons', aliases), 'Array(String)'),
        llmloopPick(attrs_, 'gen_ai.response.finish_reasons', aliases) != '',
            [llmloopPick(attrs_, 'gen_ai.response.finish_reasons', aliases)],
        arrayMap(i -> attrs_[concat('gen_ai.completion.', toString(i), '.finish_reason')],
                 llmloopFlatIndices(mapKeys(attrs_), 'gen_ai.completion.', 100)))) AS FinishReasons,
    coalesce(nullIf(attrs_['error.type'], ''),
             nullIf(llmloopEventAttribute(`Events.Name`, `Events.Attributes`, 'exception', 'exception.type'), ''),
             if(StatusCode = 'Error', '_OTHER', '')) AS ErrorType,
    llmloopPick(attrs_, 'gen_ai.response.id', aliases) AS ResponseId,
    llmloopPick(attrs_, 'gen_ai.conversation.id', aliases) AS ConversationId,
    multiIf(
        attrs_['gen_ai.input.messages'] != '', attrs_['gen_ai.input.messages'],
        has(mapKeys(attrs_), 'gen_ai.prompt.0.role') OR has(mapKeys(attrs_), 'gen_ai.prompt.0.content'),
            llmloopOpenLLMetryMessages(attrs_, 'gen_ai.prompt.'),
        has(mapKeys(attrs_), 'llm.input_messages.0.message.role'),
            llmloopOpenInferenceMessages(attrs_, 'llm.input_messages.'),
        llmloopPick(attrs_, 'gen_ai.input.messages', aliases) != '',
            llmloopJsonMessages(llmloopPick(attrs_, 'gen_ai.input.messages', aliases)),
        has(`Events.Name`, 'gen_ai.content.prompt'),
            llmloopJsonMessages(llmloopEventAttribute(`Events.Name`, `Events.Attributes`, 'gen_ai.content.prompt', 'gen_ai.prompt')),
        JSONHas(attrs_['input.value'], 'messages'),
            llmloopJsonMessages(JSONExtractRaw(attrs_['input.value'], 'messages')),
        '') AS InputMessages,
    multiIf(
        attrs_['gen_ai.output.messages'] != '', attrs_['gen_ai.output.messages'],
        has(mapKeys(attrs_), 'gen_ai.completion.0.role') OR has(mapKeys(attrs_), 'gen_ai.completion.0.content'),
            llmloopOpenLLMetryMessages(attrs_, 'gen_ai.completion.'),
        has(mapKeys(attrs_), 'llm.output_messages.0.message.role'),
            llmloopOpenInferenceMessages(attrs_, 'llm.output_messages.'),
        attrs_['ai.response.text'] != '' OR attrs_['ai.response.toolCalls'] != '',
            llmloopMessages([llmloopMessage('assistant', arrayConcat(
                if(attrs_['ai.response.text'] = '', [], [llmloopTextPart(attrs_['ai.response.text'])]),
                arrayMap(c -> llmloopToolCallPart(JSONExtractString(c, 'toolCallId'), JSONExtractString(c, 'toolName'),
                                                  if(JSONHas(c, 'input'), JSONExtractRaw(c, 'input'), JSONExtractRaw(c, 'args'))),
                         arraySlice(JSONExtractArrayRaw(attrs_['ai.response.toolCalls']), 1, 100))),
                attrs_['ai.response.finishReason'])]),
        has(`Events.Name`, 'gen_ai.content.completion'),
            llmloopJsonMessages(llmloopEventAttribute(`Events.Name`, `Events.Attributes`, 'gen_ai.content.completion', 'gen_ai.completion')),
        isValidJSON(attrs_['output.value']),
            llmloopJsonResponse(attrs_['output.value']),
        '') AS OutputMessages,
    multiIf(
        attrs_['gen_ai.system_instructions'] != '', attrs_['gen_ai.system_instructions'],
        JSONHas(attrs_['input.value'], 'system'),
            llmloopJsonInstructions(if(JSONType(attrs_['input.value'], 'system') = 'String',
                                       JSONExtractString(attrs_['input.value'], 'system'),
                                       JSONExtractRaw(attrs_['input.value'], 'system'))),
        JSONHas(attrs_['ai.prompt'], 'system'),
            llmloopJsonInstructions(JSONExtractString(attrs_['ai.prompt'], 'system')),
        '') AS SystemInstructions)
FROM {{db}}.spans_foreign;

-- One meaning per token column, whatever convention the span used (visible in DESCRIBE).
ALTER TABLE {{db}}.spans{{local}} {{on_cluster}}
    COMMENT COLUMN InputTokens 'all input tokens, cache reads and cache writes included (OTel: gen_ai.usage.input_tokens)',
    COMMENT COLUMN OutputTokens 'all output tokens, reasoning included (gen_ai.usage.output_tokens)',
    COMMENT COLUMN CacheReadTokens 'input tokens read from the prompt cache (part of InputTokens)',
    COMMENT COLUMN CacheWriteTokens 'input tokens written to the prompt cache (part of InputTokens)',
    COMMENT COLUMN ReasoningTokens 'reasoning tokens (part of OutputTokens)',
    COMMENT COLUMN TimeToFirstChunk 'seconds from the request to the first streamed chunk';
