-- The registry: published configs, rollout events and user feedback (served under /api/v1).
--
-- * configs: every published config, immutable. An id (`name@version`) names one document forever:
--   the collector refuses to publish an id again with other content (check, then insert, under one
--   lock). Should two collectors on a shared server race on one id, readers take the first
--   publication (earliest `published`), so what an id means never changes.
-- * rollout_events: append-only. A rollout's state is the fold of its events in `seq` order
--   (collector/api/rollouts.py); nothing is updated or deleted, so history is kept. (rollout, seq)
--   is the key, so a replayed insert collapses (ReplacingMergeTree; read with FINAL). Collectors
--   sharing a server may race for the next seq: each append carries the deduplication token
--   `rollout:seq`, so the store keeps the first and drops the others, and a collector that reads
--   back another `writer` answers 409 instead of claiming its action.
-- * feedback: a user's feedback on a span, a trace or a provider response. `id` is the client's id
--   for one piece of feedback, so a retried delivery is one row after merge: count with FINAL (or
--   uniqExact(id)), as with spans. Join to spans by trace_id = TraceId (and span_id = SpanId), both
--   lowercase hex, or by response_id = SpanAttributes['gen_ai.response.id'].
-- On a cluster each is a _local table behind a Distributed one, sharded so that rows which must
-- collapse or fold together share a shard; the collector inserts with distributed_foreground_insert
-- so a write is visible to the next read.
CREATE TABLE IF NOT EXISTS {{db}}.configs{{local}} {{on_cluster}} (
    id String,                                  -- name@version
    name LowCardinality(String),
    version String,
    content_hash String,                        -- sha256 hex of the canonical JSON document
    document String CODEC(ZSTD(3)),             -- the config as published, canonical JSON
    provider LowCardinality(String),
    model LowCardinality(String),
    fingerprint String,                         -- llmloop.config.fingerprint, '' when not computable
    description String,
    published DateTime64(3, 'UTC'),
    publisher String
) ENGINE = {{replicated}}MergeTree
ORDER BY (name, id);

CREATE TABLE IF NOT EXISTS {{db}}.rollout_events{{local}} {{on_cluster}} (
    rollout LowCardinality(String),             -- the config name the rollout routes between
    seq UInt64,                                 -- 1, 2, ... per rollout; the state's version
    time DateTime64(3, 'UTC'),
    action LowCardinality(String),              -- start | step | promote | rollback | pause | resume
    actor String,
    reason String,
    -- The action's arguments (empty when the action has none): start sets all of them; step the
    -- canary's new weight; promote the new control; rollback names the canary it ended.
    control String,
    canary String,
    shadow String,
    weight Float64,                             -- canary share in percent
    steps Array(Float64),
    writer String                               -- a unique id per append: who won a race for `seq`
) ENGINE = {{replicated}}ReplacingMergeTree
ORDER BY (rollout, seq)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {{db}}.feedback{{local}} {{on_cluster}} (
    id String,                                  -- the client's id; a retried delivery repeats it
    time DateTime64(3, 'UTC'),                  -- when the collector received it
    trace_id String,                            -- lowercase hex, as spans.TraceId
    span_id String,                             -- lowercase hex, as spans.SpanId
    response_id String,                         -- the provider's response id (gen_ai.response.id)
    score Nullable(Float64),
    thumbs LowCardinality(String),              -- up | down | ''
    comment String,
    request_key String,                         -- the router key (user or session id), if given
    config_id LowCardinality(String),
    metadata Map(LowCardinality(String), String)
) ENGINE = {{replicated}}ReplacingMergeTree
ORDER BY id;

-- if cluster
CREATE TABLE IF NOT EXISTS {{db}}.configs {{on_cluster}} AS {{db}}.configs_local
ENGINE = Distributed({{cluster}}, {{db}}, configs_local, cityHash64(name));

CREATE TABLE IF NOT EXISTS {{db}}.rollout_events {{on_cluster}} AS {{db}}.rollout_events_local
ENGINE = Distributed({{cluster}}, {{db}}, rollout_events_local, cityHash64(rollout));

CREATE TABLE IF NOT EXISTS {{db}}.feedback {{on_cluster}} AS {{db}}.feedback_local
ENGINE = Distributed({{cluster}}, {{db}}, feedback_local, cityHash64(id));
-- end
