-- Freshly inserted parts of the OTLP tables are written Compact (all columns in one file) instead of Wide
-- (files per column and stream): a 20k-span batch is ~22 MB uncompressed, over ClickHouse's default
-- min_bytes_for_wide_part (10 MB), and as a Wide part of `spans` it was 220 files. Creating (and, after
-- merges, deleting) that many files per insert cost ~6 % of the collector's CPU in the kernel (ext4 inode
-- allocation, profiled with perf during bench/ingest.py). At 128 MiB, inserted batches stay Compact and the
-- parts merges build (10 batches and more, see 0011) are Wide, as queries over long ranges want.
ALTER TABLE {{db}}.spans{{local}} {{on_cluster}} MODIFY SETTING min_bytes_for_wide_part = 134217728;
ALTER TABLE {{db}}.logs{{local}} {{on_cluster}} MODIFY SETTING min_bytes_for_wide_part = 134217728;
