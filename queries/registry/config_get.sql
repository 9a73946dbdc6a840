-- One published config by id. Should a race on a shared server have stored an id twice, the first
-- publication is the one that counts.
SELECT id, name, version, content_hash, document, fingerprint,
       toUnixTimestamp64Milli(published) AS published_ms, publisher
FROM {{db}}.configs
WHERE id = {id:String}
ORDER BY published
LIMIT 1;
