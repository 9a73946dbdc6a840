-- The attribute-rendering functions every OTLP ingest view uses (SQL UDFs are server-wide).
-- UDFs expand inline, where `arg.field` does not resolve: fields are read with tupleElement.
-- The ingest tables decode AnyValue's scalar fields as Nullable, so the one that is set is the one
-- that is not NULL, and coalesce picks it without branching per row.

-- One OTLP AnyValue element inside an array or map, as a JSON value. The protobuf decoding used by
-- the ingest tables unrolls AnyValue two levels deep; values nested deeper render as JSON null.
CREATE FUNCTION IF NOT EXISTS llmloopAnyValueJson {{on_cluster}} AS (v) ->
    coalesce(
        toJSONString(tupleElement(v, 'string_value')),
        toString(tupleElement(v, 'bool_value')),
        toString(tupleElement(v, 'int_value')),
        if(isFinite(tupleElement(v, 'double_value')), toString(tupleElement(v, 'double_value')), NULL),
        toJSONString(base64Encode(tupleElement(v, 'bytes_value'))),
        'null');

-- A top-level OTLP AnyValue as the string stored in attribute maps, the way the OTel Collector
-- renders it: strings as-is, numbers and booleans as text, bytes as base64, arrays and maps as JSON.
-- An empty array or map renders as '' (indistinguishable from an unset value after decoding).
CREATE FUNCTION IF NOT EXISTS llmloopAnyValueString {{on_cluster}} AS (v) ->
    coalesce(
        tupleElement(v, 'string_value'),
        toString(tupleElement(v, 'bool_value')),
        toString(tupleElement(v, 'int_value')),
        toString(tupleElement(v, 'double_value')),
        base64Encode(tupleElement(v, 'bytes_value')),
        if(empty(tupleElement(tupleElement(v, 'kvlist_value'), 'values')), NULL,
            concat('{', arrayStringConcat(arrayMap(
                kv -> concat(toJSONString(tupleElement(kv, 'key')), ':', llmloopAnyValueJson(tupleElement(kv, 'value'))),
                tupleElement(tupleElement(v, 'kvlist_value'), 'values')), ','), '}')),
        if(empty(tupleElement(tupleElement(v, 'array_value'), 'values')), NULL,
            concat('[', arrayStringConcat(arrayMap(
                x -> llmloopAnyValueJson(x), tupleElement(tupleElement(v, 'array_value'), 'values')), ','), ']')),
        '');

-- OTLP key/value list -> Map(key, rendered value), capped like the OTel SDK's attribute limits:
-- at most `max_count` attributes (the rest dropped) and `max_length` characters per value (longer
-- ones cut). `dropped` is what the sender already dropped. What was dropped or cut is recorded in the
-- map itself as llmloop.dropped_attributes_count / llmloop.truncated_values_count (only when > 0).
CREATE FUNCTION IF NOT EXISTS llmloopAttributes {{on_cluster}} AS (kvs, max_count, max_length, dropped) ->
    mapConcat(
        CAST((arrayMap(kv -> tupleElement(kv, 'key'), arraySlice(kvs, 1, max_count)),
              arrayMap(v -> if(length(v) > max_length, leftUTF8(v, max_length), v),
                       arrayMap(kv -> llmloopAnyValueString(tupleElement(kv, 'value')), arraySlice(kvs, 1, max_count)))),
             'Map(String, String)'),
        mapFilter((k, n) -> n != '0', map(
            'llmloop.dropped_attributes_count', toString(dropped + greatest(length(kvs), max_count) - max_count),
            'llmloop.truncated_values_count', toString(arrayCount(
                v -> length(v) > max_length AND lengthUTF8(v) > max_length,
                arrayMap(kv -> llmloopAnyValueString(tupleElement(kv, 'value')), arraySlice(kvs, 1, max_count)))))));
