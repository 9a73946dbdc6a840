-- The version (last seq) of every rollout: polled to notice events another collector appended.
SELECT rollout, max(seq) AS version
FROM {{db}}.rollout_events
GROUP BY rollout;
