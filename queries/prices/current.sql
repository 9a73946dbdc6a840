-- The prices in force (shipped rows with the user's override file over them), optionally of one model.
SELECT model, provider, effective_from, input, output, cache_read, cache_write, cache_write_1h, reasoning, source,
       overridden
FROM {{db}}.prices_current
WHERE {model:String} = '' OR model = {model:String}
ORDER BY provider, model, effective_from;
