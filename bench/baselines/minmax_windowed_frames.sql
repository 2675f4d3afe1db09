-- Shape minmax_windowed, contender "RANGE frames": `min(amount) over 7d`, `max(amount) over 30d`
-- (non-invertible), as window aggregates over the union of events and labels ordered by time
-- per user. The frame [T - w, T - 1 microsecond] is the window [T - w, T): timestamps have
-- microsecond precision. Label rows carry a null amount, so they add nothing to a frame.
WITH u AS (
  SELECT user_id, event_timestamp AS ts, amount AS a, NULL::BIGINT AS r
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
    AND amount IS NOT NULL
  UNION ALL
  SELECT user_id, event_timestamp, NULL, __row FROM labels
),
f AS (
  SELECT r,
    min(a) OVER (PARTITION BY user_id ORDER BY ts
                 RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)
      AS mn7,
    max(a) OVER (PARTITION BY user_id ORDER BY ts
                 RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)
      AS mx30
  FROM u
  QUALIFY r IS NOT NULL
)
SELECT l.*, f.mn7 AS min_amount_7d, f.mx30 AS max_amount_30d
FROM labels l JOIN f ON f.r = l.__row
