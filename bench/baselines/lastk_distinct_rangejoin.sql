-- Shape lastk_distinct, contender "bucketed range join": as minmax_windowed_rangejoin.sql, with
-- an ordered list aggregate for last_k (time, then value, latest first) and a DISTINCT count.
WITH ev AS (
  SELECT user_id, event_timestamp AS ts, amount AS a, date_trunc('day', event_timestamp) AS d,
         floor(epoch(event_timestamp) / 2592000) AS b
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
    list(e.a ORDER BY e.ts DESC, e.a DESC) FILTER (WHERE e.a IS NOT NULL) AS k,
    count(DISTINCT e.d) AS cd
  FROM ws s
  JOIN ev e ON s.user_id = e.user_id AND s.b = e.b
           AND e.ts >= s.t - INTERVAL 30 DAY AND e.ts < s.t
  GROUP BY ALL
)
SELECT l.*, coalesce(j.k[1:3], []) AS recent_amounts_30d, coalesce(j.cd, 0) AS active_days_30d
FROM labels l LEFT JOIN j ON l.user_id = j.user_id AND l.event_timestamp = j.t
