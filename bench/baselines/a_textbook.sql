-- Baseline (a): the textbook point-in-time join a person writes first: join every label with
-- every visible event of its entity, then GROUP BY with conditional aggregates; `last` with
-- ROW_NUMBER over the same join.
WITH ev AS (
  SELECT user_id, event_timestamp AS ts, created_at AS c,
         greatest(event_timestamp, created_at) AS av, amount AS a,
         date_trunc('day', event_timestamp) AS d
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
    AND created_at IS NOT NULL
),
spine AS (SELECT DISTINCT user_id, event_timestamp AS t FROM labels),
j AS (
  SELECT s.user_id, s.t, e.ts, e.a, e.d,
         row_number() OVER (PARTITION BY s.user_id, s.t, e.a IS NULL
                            ORDER BY e.ts DESC, e.c DESC, e.a DESC) AS rn
  FROM spine s JOIN ev e ON s.user_id = e.user_id AND e.ts < s.t AND e.av < s.t
),
g AS (
  SELECT user_id, t,
    count(CASE WHEN ts >= t - INTERVAL 7 DAY THEN 1 END) AS n7,
    count(CASE WHEN ts >= t - INTERVAL 30 DAY THEN 1 END) AS n30,
    sum(CASE WHEN ts >= t - INTERVAL 30 DAY THEN a END) AS s30,
    avg(CASE WHEN ts >= t - INTERVAL 30 DAY THEN a END) AS a30,
    min(CASE WHEN ts >= t - INTERVAL 7 DAY THEN a END) AS mn7,
    max(CASE WHEN ts >= t - INTERVAL 90 DAY THEN a END) AS mx90,
    max(CASE WHEN rn = 1 AND a IS NOT NULL THEN a END) AS last_a,
    count(DISTINCT CASE WHEN ts >= t - INTERVAL 30 DAY THEN d END) AS cd30,
    count(CASE WHEN ts >= t - INTERVAL 60 DAY THEN 1 END) AS alive
  FROM j GROUP BY user_id, t
)
SELECT l.*,
  CASE WHEN g.alive > 0 THEN g.n7 END AS orders_7d,
  CASE WHEN g.alive > 0 THEN g.n30 END AS orders_30d,
  CASE WHEN g.alive > 0 THEN g.s30 END AS spend_30d,
  CASE WHEN g.alive > 0 THEN g.a30 END AS avg_amount_30d,
  CASE WHEN g.alive > 0 THEN g.mn7 END AS min_amount_7d,
  CASE WHEN g.alive > 0 THEN g.mx90 END AS max_amount_90d,
  CASE WHEN g.alive > 0 THEN g.last_a END AS last_amount,
  CASE WHEN g.alive > 0 THEN g.cd30 END AS active_days_30d,
  CASE WHEN g.alive > 0 THEN g.s30 / nullif(g.n30, 0) END AS spend_per_order_30d
FROM labels l LEFT JOIN g ON l.user_id = g.user_id AND l.event_timestamp = g.t
