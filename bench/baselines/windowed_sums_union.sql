-- Shape windowed_sums, contender "one sorted pass": the running sums of windowed_sums.sql read
-- without ASOF joins. Three probes per label (at T, T - 7d, T - 30d) are sorted with the events
-- per user, each probe before the events of its own timestamp (strict <), and one window pass
-- gives every probe the running count, count of amounts and sum before it; a window's value is
-- the difference of two probes. One sort of events + 3 probes per label, instead of a sort per
-- ASOF join.
WITH u AS (
  SELECT user_id, event_timestamp AS ts, 1 AS kind, 1 AS n, amount AS a,
         NULL::BIGINT AS r, NULL::INTEGER AS d
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
  UNION ALL
  SELECT l.user_id, l.event_timestamp - to_days(k.d), 0, 0, NULL, l.__row, k.d
  FROM labels l CROSS JOIN (VALUES (0), (7), (30)) AS k (d)
),
c AS (
  SELECT r, d, sum(n) OVER w AS n, count(a) OVER w AS na, sum(a) OVER w AS s
  FROM u
  WINDOW w AS (PARTITION BY user_id ORDER BY ts, kind ROWS UNBOUNDED PRECEDING)
  QUALIFY kind = 0
),
w AS (
  SELECT r,
    sum(n) FILTER (WHERE d = 0) AS n0, sum(n) FILTER (WHERE d = 7) AS n7,
    sum(n) FILTER (WHERE d = 30) AS n30,
    sum(na) FILTER (WHERE d = 0) AS na0, sum(na) FILTER (WHERE d = 7) AS na7,
    sum(na) FILTER (WHERE d = 30) AS na30,
    sum(s) FILTER (WHERE d = 0) AS s0, sum(s) FILTER (WHERE d = 7) AS s7,
    sum(s) FILTER (WHERE d = 30) AS s30
  FROM c GROUP BY r
)
SELECT l.*,
  CAST(w.n0 - w.n7 AS BIGINT) AS orders_7d,
  CAST(w.n0 - w.n30 AS BIGINT) AS orders_30d,
  CASE WHEN w.na0 > w.na7 THEN w.s0 - coalesce(w.s7, 0) END AS spend_7d,
  CASE WHEN w.na0 > w.na30 THEN w.s0 - coalesce(w.s30, 0) END AS spend_30d
FROM labels l JOIN w ON w.r = l.__row
