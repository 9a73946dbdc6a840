-- Who appended event `seq` of a rollout (the store keeps the first append of a seq; see 0005).
SELECT writer
FROM {{db}}.rollout_events FINAL
WHERE rollout = {rollout:String} AND seq = {seq:UInt64};
