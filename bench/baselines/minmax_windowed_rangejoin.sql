-- Shape minmax_windowed, contender "bucketed range join": each distinct (user, T) joined with
-- its user's events of the widest window (30d), the join keyed on 30-day buckets (a spine row
-- in its own bucket and the one before) so it is an equi-join; the 7d window is a FILTER.
WITH ev AS (
  SELECT user_id, event_timestamp AS ts, amount AS a, floor(epoch(event_timestamp) / 2592000) AS b
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
    AND amount IS NOT NULL
),
spine AS (SELECT DISTINCT user_id, event_timestamp AS t FROM labels),
ws AS (
  SELECT user_id, t, floor(epoch(t) / 2592000) AS b FROM spine
  UNION ALL
  SELECT user_id, t, floor(epoch(t) / 2592000) - 1 FROM spine
),
j AS (
  SELECT s.user_id, s.t,
    min(e.a) FILTER (WHERE e.ts >= s.t - INTERVAL 7 DAY) AS mn7,
    max(e.a) AS mx30
  FROM ws s
  JOIN ev e ON s.user_id = e.user_id AND s.b = e.b
           AND e.ts >= s.t - INTERVAL 30 DAY AND e.ts < s.t
  GROUP BY ALL
)
SELECT l.*, j.mn7 AS min_amount_7d, j.mx30 AS max_amount_30d
FROM labels l LEFT JOIN j ON l.user_id = j.user_id AND l.event_timestamp = j.t
