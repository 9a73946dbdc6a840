-- Background merges were the second-largest cost of sustained ingest, after the inserts themselves.
-- With ClickHouse's default merge_selector_base (5), 1.5M spans arriving as 20k-span parts (bench/ingest.py
-- --spans 1500000, HTTP) spent 32-42 s of merge CPU (21-28 us per span: each row rewritten ~5 times
-- within a minute); at 10, 20-21 s, with more parts alive at a time (19 at the end of the run, 26 at 20,
-- vs 16-17; far below parts_to_delay_insert) and ~0.3 GB less peak memory. End to end: 21.2-25.3k ->
-- 27.5-28.7k spans/s.
-- The setting widens merges (more parts per merge, fewer rewrites of each row). Only the MergeTree tables
-- that take the OTLP batches get it; on a cluster, those are the _local tables.
ALTER TABLE {{db}}.spans{{local}} {{on_cluster}} MODIFY SETTING merge_selector_base = 10;
ALTER TABLE {{db}}.logs{{local}} {{on_cluster}} MODIFY SETTING merge_selector_base = 10;
