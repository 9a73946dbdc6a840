-- Rollout events after a known version, in fold order: of one rollout, or of all ({rollout:String} = '').
SELECT rollout, seq, toUnixTimestamp64Milli(time) AS time_ms, action, actor, reason,
       control, canary, shadow, weight, steps
FROM {{db}}.rollout_events FINAL
WHERE ({rollout:String} = '' OR rollout = {rollout:String}) AND seq > {after:UInt64}
ORDER BY rollout, seq;
