-- Published configs, all or of one name ({name:String} = ''), newest first; one row per id (the
-- first publication, as in config_get.sql).
SELECT id, name, version, content_hash, document, fingerprint, published_ms, publisher
FROM (
    SELECT id, name, version, content_hash, document, fingerprint,
           toUnixTimestamp64Milli(published) AS published_ms, publisher
    FROM {{db}}.configs
    WHERE {name:String} = '' OR name = {name:String}
    ORDER BY published
    LIMIT 1 BY id
)
ORDER BY published_ms DESC, id DESC;
