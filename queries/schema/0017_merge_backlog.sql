-- The embedded engine runs merges at a lower priority than ingest (collector/store.py): during a burst they
-- wait, and parts pile up for a while. ClickHouse delays inserts only past 1000 active parts per partition, and
-- queries (FINAL above all) would read up to that many parts before it did. At 300, inserts slow down
-- (10 ms each, growing towards 1 s by parts_to_throw_insert) early enough for the merges to catch up, while a
-- burst stays well below it: 3M spans at full load left 117 parts at nice 10, 148 at nice 19 (bench/README.md,
-- session 12). Only the MergeTree tables that take the OTLP batches get it; on a cluster, those are the _local
-- tables.
ALTER TABLE {{db}}.spans{{local}} {{on_cluster}} MODIFY SETTING parts_to_delay_insert = 300;
ALTER TABLE {{db}}.logs{{local}} {{on_cluster}} MODIFY SETTING parts_to_delay_insert = 300;
