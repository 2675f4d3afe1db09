-- Baseline (b): the fastest formulation of the churn_core features we could write by hand for
-- DuckDB, with the same semantics (strictly-before, ingestion time, TTL, ties).
-- One range join bounded by the widest window (90d) with per-window FILTERs for the windowed
-- aggregates; `last` as a running arg-max (struct max) in ingestion order read with an ASOF join.
WITH ev AS (
  SELECT user_id, event_timestamp AS ts, created_at AS c,
         greatest(event_timestamp, created_at) AS av, amount AS a,
         date_trunc('day', event_timestamp) AS d
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
    AND created_at IS NOT NULL
),
spine AS (SELECT DISTINCT user_id, event_timestamp AS t FROM labels),
w AS (
  SELECT s.user_id, s.t,
    count(*) FILTER (WHERE e.ts >= s.t - INTERVAL 7 DAY) AS n7,
    count(*) FILTER (WHERE e.ts >= s.t - INTERVAL 30 DAY) AS n30,
    sum(e.a) FILTER (WHERE e.ts >= s.t - INTERVAL 30 DAY) AS s30,
    avg(e.a) FILTER (WHERE e.ts >= s.t - INTERVAL 30 DAY) AS a30,
    min(e.a) FILTER (WHERE e.ts >= s.t - INTERVAL 7 DAY) AS mn7,
    max(e.a) AS mx90,
    count(DISTINCT CASE WHEN e.ts >= s.t - INTERVAL 30 DAY THEN e.d END) AS cd30,
    count(*) FILTER (WHERE e.ts >= s.t - INTERVAL 60 DAY) AS alive
  FROM spine s
  JOIN ev e ON s.user_id = e.user_id AND e.ts < s.t AND e.av < s.t
           AND e.ts >= s.t - INTERVAL 90 DAY
  GROUP BY ALL
),
lastv AS (
  SELECT user_id, av,
         max({'ts': ts, 'c': c, 'a': a}) FILTER (WHERE a IS NOT NULL)
           OVER (PARTITION BY user_id ORDER BY av RANGE UNBOUNDED PRECEDING) AS m
  FROM ev
)
SELECT l.*,
  CASE WHEN w.alive > 0 THEN coalesce(w.n7, 0) END AS orders_7d,
  CASE WHEN w.alive > 0 THEN coalesce(w.n30, 0) END AS orders_30d,
  CASE WHEN w.alive > 0 THEN w.s30 END AS spend_30d,
  CASE WHEN w.alive > 0 THEN w.a30 END AS avg_amount_30d,
  CASE WHEN w.alive > 0 THEN w.mn7 END AS min_amount_7d,
  CASE WHEN w.alive > 0 THEN w.mx90 END AS max_amount_90d,
  CASE WHEN w.alive > 0 THEN lv.m.a END AS last_amount,
  CASE WHEN w.alive > 0 THEN coalesce(w.cd30, 0) END AS active_days_30d,
  CASE WHEN w.alive > 0 THEN w.s30 / nullif(coalesce(w.n30, 0), 0) END AS spend_per_order_30d
FROM labels l
LEFT JOIN w ON l.user_id = w.user_id AND l.event_timestamp = w.t
ASOF LEFT JOIN lastv lv ON l.user_id = lv.user_id AND lv.av < l.event_timestamp
