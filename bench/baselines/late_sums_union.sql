-- Shape late_sums, contender "one sorted pass": the formula of late_sums.sql,
--   #{av < T} - #{ts < T - w} + #{ts < T - w, created >= T},
-- with the two running sums read in one window pass instead of ASOF joins: the events appear
-- twice, once keyed by availability (role 0, probed at T) and once by event time (role 1,
-- probed at T - 7d and T - 30d); probes sort before the events of their own key (strict <).
-- The rows late by more than a window are corrected by the same small join as late_sums.sql.
WITH ev AS (
  SELECT user_id, event_timestamp AS ts, created_at AS c,
         greatest(event_timestamp, created_at) AS av, amount AS a
  FROM orders_late
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
    AND created_at IS NOT NULL
),
u AS (
  SELECT user_id, 0 AS role, av AS key, 1 AS kind, 1 AS n, a,
         NULL::BIGINT AS r, NULL::INTEGER AS d
  FROM ev
  UNION ALL
  SELECT user_id, 1, ts, 1, 1, a, NULL, NULL FROM ev
  UNION ALL
  SELECT l.user_id, CASE WHEN k.d = 0 THEN 0 ELSE 1 END, l.event_timestamp - to_days(k.d),
         0, 0, NULL, l.__row, k.d
  FROM labels l CROSS JOIN (VALUES (0), (7), (30)) AS k (d)
),
p AS (
  SELECT r, d, sum(n) OVER w AS n, count(a) OVER w AS na, sum(a) OVER w AS s
  FROM u
  WINDOW w AS (PARTITION BY user_id, role ORDER BY key, kind ROWS UNBOUNDED PRECEDING)
  QUALIFY kind = 0
),
late AS (SELECT user_id, ts, c, a FROM ev WHERE c > ts + INTERVAL 7 DAY),
corr AS (
  SELECT l.__row AS r,
    count(*) FILTER (WHERE e.ts < l.event_timestamp - INTERVAL 7 DAY) AS n7,
    count(e.a) FILTER (WHERE e.ts < l.event_timestamp - INTERVAL 7 DAY) AS na7,
    sum(e.a) FILTER (WHERE e.ts < l.event_timestamp - INTERVAL 7 DAY) AS s7,
    count(*) FILTER (WHERE e.ts < l.event_timestamp - INTERVAL 30 DAY) AS n30,
    count(e.a) FILTER (WHERE e.ts < l.event_timestamp - INTERVAL 30 DAY) AS na30,
    sum(e.a) FILTER (WHERE e.ts < l.event_timestamp - INTERVAL 30 DAY) AS s30
  FROM labels l
  JOIN late e ON l.user_id = e.user_id AND e.c >= l.event_timestamp
             AND e.ts < l.event_timestamp - INTERVAL 7 DAY
  GROUP BY l.__row
),
w AS (
  SELECT r,
    sum(n) FILTER (WHERE d = 0) AS n0, sum(n) FILTER (WHERE d = 7) AS n7,
    sum(n) FILTER (WHERE d = 30) AS n30,
    sum(na) FILTER (WHERE d = 0) AS na0, sum(na) FILTER (WHERE d = 7) AS na7,
    sum(na) FILTER (WHERE d = 30) AS na30,
    sum(s) FILTER (WHERE d = 0) AS s0, sum(s) FILTER (WHERE d = 7) AS s7,
    sum(s) FILTER (WHERE d = 30) AS s30
  FROM p GROUP BY r
),
x AS (
  SELECT l.*,
    w.n0 - w.n7 + coalesce(k.n7, 0) AS n7,
    w.n0 - w.n30 + coalesce(k.n30, 0) AS n30,
    coalesce(w.na0, 0) - coalesce(w.na7, 0) + coalesce(k.na7, 0) AS na7,
    coalesce(w.na0, 0) - coalesce(w.na30, 0) + coalesce(k.na30, 0) AS na30,
    coalesce(w.s0, 0) - coalesce(w.s7, 0) + coalesce(k.s7, 0) AS s7,
    coalesce(w.s0, 0) - coalesce(w.s30, 0) + coalesce(k.s30, 0) AS s30
  FROM labels l JOIN w ON w.r = l.__row LEFT JOIN corr k ON k.r = l.__row
)
SELECT * EXCLUDE (n7, n30, na7, na30, s7, s30),
  CAST(n7 AS BIGINT) AS orders_7d,
  CAST(n30 AS BIGINT) AS orders_30d,
  CASE WHEN na7 > 0 THEN s7 END AS spend_7d,
  CASE WHEN na30 > 0 THEN s30 END AS spend_30d
FROM x
