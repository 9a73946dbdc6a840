-- The migration runner's own bookkeeping: which numbered migrations were applied, and when.
CREATE DATABASE IF NOT EXISTS {{db}} {{on_cluster}};

CREATE TABLE IF NOT EXISTS {{db}}.schema_migrations {{on_cluster}} (
    version UInt32,
    name String,
    applied_at DateTime DEFAULT now()
) ENGINE = {{replicated}}ReplacingMergeTree
ORDER BY version;
