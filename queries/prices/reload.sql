-- After a price load: the lookup dictionary re-reads the prices in force (see 0007_prices.sql).
SYSTEM RELOAD DICTIONARY {{on_cluster}} {{db}}.prices_dict;
