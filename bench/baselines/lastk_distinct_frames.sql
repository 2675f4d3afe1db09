-- Shape lastk_distinct, contender "RANGE frames": `last_k(amount, 3) over 30d` and
-- `count_distinct(date_trunc('day', ts)) over 30d` as window aggregates over events and labels
-- ordered by time per user, frame [T - 30d, T - 1 microsecond]. last_k orders by time, then by
-- value (no `created`), latest first; over no rows it is [] and the count 0.
WITH u AS (
  SELECT user_id, event_timestamp AS ts, amount AS a, date_trunc('day', event_timestamp) AS d,
         NULL::BIGINT AS r
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
  UNION ALL
  SELECT user_id, event_timestamp, NULL, NULL, __row FROM labels
),
f AS (
  SELECT r,
    list(a ORDER BY ts DESC, a DESC) FILTER (WHERE a IS NOT NULL) OVER w AS k,
    count(DISTINCT d) OVER w AS cd
  FROM u
  WINDOW w AS (PARTITION BY user_id ORDER BY ts
               RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING)
  QUALIFY r IS NOT NULL
)
SELECT l.*, coalesce(f.k[1:3], []) AS recent_amounts_30d, f.cd AS active_days_30d
FROM labels l JOIN f ON f.r = l.__row
