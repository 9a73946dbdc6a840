-- Model prices and the cost of every GenAI call, computed at query time.
--
-- Prices (USD per 1M tokens) are effective-dated rows in two layers: `shipped` (llmloop.semconv's
-- prices.toml, reloaded at every collector start) and `user` (an override file: `serve --prices` or
-- `llmloop prices load`). A user row replaces the shipped row of the same model, provider and date,
-- and may add models. Each load of a layer writes a new generation (recorded in price_loads) and the
-- newest generation of each layer is the one in force, so a load replaces its layer whole.
-- Cost is never stored: `genai_calls` multiplies tokens by the price in effect on the span's date,
-- so a corrected price reprices history without a backfill.
CREATE TABLE IF NOT EXISTS {{db}}.prices {{on_cluster}} (
    layer LowCardinality(String),
    generation UInt64,
    model String,
    provider LowCardinality(String),
    effective_from Date,
    input Float64,
    output Float64,
    cache_read Nullable(Float64),
    cache_write Nullable(Float64),
    cache_write_1h Nullable(Float64),
    reasoning Nullable(Float64),
    source Nullable(String)
) ENGINE = {{replicated}}MergeTree
ORDER BY (layer, generation, model, provider, effective_from);

CREATE TABLE IF NOT EXISTS {{db}}.price_loads {{on_cluster}} (
    layer LowCardinality(String),
    generation UInt64,
    loaded DateTime64(3) DEFAULT now64(3),
    origin String,       -- the file the layer came from
    row_count UInt64
) ENGINE = {{replicated}}MergeTree
ORDER BY (layer, generation);

-- The prices in force: newest generation of each layer, user rows over shipped ones.
CREATE VIEW IF NOT EXISTS {{db}}.prices_current {{on_cluster}} AS
SELECT model, provider, effective_from,
       argMax(input, layer = 'user') AS input,
       argMax(output, layer = 'user') AS output,
       argMax(cache_read, layer = 'user') AS cache_read,
       argMax(cache_write, layer = 'user') AS cache_write,
       argMax(cache_write_1h, layer = 'user') AS cache_write_1h,
       argMax(reasoning, layer = 'user') AS reasoning,
       argMax(source, layer = 'user') AS source,
       max(layer = 'user') AS overridden
FROM {{db}}.prices
WHERE (layer, generation) IN (SELECT layer, max(generation) FROM {{db}}.price_loads GROUP BY layer)
GROUP BY model, provider, effective_from;

-- Lookup by (model, provider) and date. Each row is in force until the next row of its key. Rows of
-- first-party providers are also keyed with provider '' so a hosting platform (aws.bedrock,
-- gcp.vertex_ai, azure.ai.openai, ...) falls back to the model's first-party price.
-- Reloaded by the collector after each price load, and every minute or two in case another
-- collector on a shared server loaded prices.
CREATE DICTIONARY IF NOT EXISTS {{db}}.prices_dict {{on_cluster}} (
    model String,
    provider String,
    effective_from Date,
    effective_to Date,
    input Float64,
    output Float64,
    cache_read Nullable(Float64),
    cache_write Nullable(Float64),
    cache_write_1h Nullable(Float64),
    reasoning Nullable(Float64)
)
PRIMARY KEY model, provider
SOURCE(CLICKHOUSE(QUERY '
    SELECT model, provider, effective_from,
           leadInFrame(effective_from, 1, toDate(''2299-12-31'')) OVER (PARTITION BY model, provider
               ORDER BY effective_from ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) - 1 AS effective_to,
           input, output, cache_read, cache_write, cache_write_1h, reasoning
    FROM (SELECT * FROM {{db}}.prices_current
          UNION ALL
          SELECT * REPLACE ('''' AS provider) FROM {{db}}.prices_current
          WHERE provider NOT IN (''aws.bedrock'', ''gcp.vertex_ai'', ''gcp.gen_ai'', ''azure.ai.openai'',
                                 ''azure.ai.inference'', ''ibm.watsonx.ai''))'))
LIFETIME(MIN 60 MAX 120)
LAYOUT(COMPLEX_KEY_RANGE_HASHED())
RANGE(MIN effective_from MAX effective_to);

-- The names a model may be priced under, most specific first: as reported; without a path or a
-- Bedrock vendor prefix (`openai/gpt-4o`, `us.anthropic.claude-...`, inference-profile ARNs); then
-- with trailing version/date tags cut one at a time (`-v1:0`, `@20240620`, `-20250514`,
-- `-2024-08-06`, `-latest`, Anthropic's `-0` for `.0` releases, a `[1m]`-style tag).
CREATE FUNCTION IF NOT EXISTS llmloopModelBase {{on_cluster}} AS (model) ->
    replaceRegexpOne(replaceRegexpOne(lower(model), '^.*/', ''),
        '^((us|eu|apac|au|ca|jp|us-gov|global)\\.)?(anthropic|amazon|meta|mistral|cohere|ai21|deepseek|openai|qwen|writer)\\.', '');

CREATE FUNCTION IF NOT EXISTS llmloopModelTrim {{on_cluster}} AS (name) ->
    replaceRegexpOne(name, '(-v[0-9]+(:[0-9]+)?|@[0-9]{8}|-[0-9]{8}|-[0-9]{4}-[0-9]{2}-[0-9]{2}|-latest|-0|\\[[^\\]]*\\])$', '');

CREATE FUNCTION IF NOT EXISTS llmloopModelCandidates {{on_cluster}} AS (model) ->
    arrayDistinct([lower(model), llmloopModelBase(model), llmloopModelTrim(llmloopModelBase(model)),
                   llmloopModelTrim(llmloopModelTrim(llmloopModelBase(model))),
                   llmloopModelTrim(llmloopModelTrim(llmloopModelTrim(llmloopModelBase(model))))]);

-- The (name, provider) price key of a call on `day`: the first candidate name priced for the
-- provider, else for any first-party provider; ('', '') when unpriced.
CREATE FUNCTION IF NOT EXISTS llmloopPriceKey {{on_cluster}} AS (model, provider, day) ->
    arrayFirst(k -> dictGetOrNull('{{db}}.prices_dict', 'input', k, day) IS NOT NULL,
               arrayFlatten(arrayMap(c -> [(c, provider), (c, '')], llmloopModelCandidates(model))));
