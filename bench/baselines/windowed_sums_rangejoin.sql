-- Shape windowed_sums, contender "bucketed range join": each distinct (user, T) joined with its
-- user's events of the widest window (30d), keyed on 30-day buckets (a spine row in its own
-- bucket and the one before) so the join is an equi-join; the 7d window is a FILTER. With
-- ~10 events per user and window, this beats the prefix sums on the benchmark's data.
WITH ev AS (
  SELECT user_id, event_timestamp AS ts, amount AS a, floor(epoch(event_timestamp) / 2592000) AS b
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
),
spine AS (SELECT DISTINCT user_id, event_timestamp AS t FROM labels),
ws AS (
  SELECT user_id, t, floor(epoch(t) / 2592000) AS b FROM spine
  UNION ALL
  SELECT user_id, t, floor(epoch(t) / 2592000) - 1 FROM spine
),
j AS (
  SELECT s.user_id, s.t,
    count(*) FILTER (WHERE e.ts >= s.t - INTERVAL 7 DAY) AS n7,
    count(*) AS n30,
    sum(e.a) FILTER (WHERE e.ts >= s.t - INTERVAL 7 DAY) AS s7,
    sum(e.a) AS s30
  FROM ws s
  JOIN ev e ON s.user_id = e.user_id AND s.b = e.b
           AND e.ts >= s.t - INTERVAL 30 DAY AND e.ts < s.t
  GROUP BY ALL
)
SELECT l.*,
  coalesce(j.n7, 0) AS orders_7d, coalesce(j.n30, 0) AS orders_30d,
  j.s7 AS spend_7d, j.s30 AS spend_30d
FROM labels l LEFT JOIN j ON l.user_id = j.user_id AND l.event_timestamp = j.t
