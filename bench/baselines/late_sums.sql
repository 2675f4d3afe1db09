-- Shape late_sums (issue #10, late rows): the windowed_sums features on a source with `created`.
-- An event counts at T iff ts in [T - w, T) and created < T, that is
--   #{av < T} - #{ts < T - w} + #{ts < T - w, created >= T}       (av = greatest(ts, created))
-- The first term is a running sum in availability order read by ASOF at T, the second a running
-- sum in event order read by ASOF at T - w, the third the rows late by more than w
-- (created >= T > ts + w): rare, so a small join over those rows alone.
WITH ev AS (
  SELECT user_id, event_timestamp AS ts, created_at AS c,
         greatest(event_timestamp, created_at) AS av, amount AS a
  FROM orders_late
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
    AND created_at IS NOT NULL
),
ga AS (
  SELECT user_id, av, count(*) AS n, count(a) AS na, sum(a) AS s FROM ev GROUP BY ALL
),
pa AS (
  SELECT user_id, av, sum(n) OVER w AS n, sum(na) OVER w AS na, sum(s) OVER w AS s
  FROM ga WINDOW w AS (PARTITION BY user_id ORDER BY av ROWS UNBOUNDED PRECEDING)
),
gt AS (
  SELECT user_id, ts, count(*) AS n, count(a) AS na, sum(a) AS s FROM ev GROUP BY ALL
),
pt AS (
  SELECT user_id, ts, sum(n) OVER w AS n, sum(na) OVER w AS na, sum(s) OVER w AS s
  FROM gt WINDOW w AS (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING)
),
late AS (SELECT user_id, ts, c, a FROM ev WHERE c > ts + INTERVAL 7 DAY),
corr AS (
  SELECT l.__row,
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
x AS (
  SELECT l.*,
    coalesce(p0.n, 0) - coalesce(p7.n, 0) + coalesce(k.n7, 0) AS n7,
    coalesce(p0.n, 0) - coalesce(p30.n, 0) + coalesce(k.n30, 0) AS n30,
    coalesce(p0.na, 0) - coalesce(p7.na, 0) + coalesce(k.na7, 0) AS na7,
    coalesce(p0.na, 0) - coalesce(p30.na, 0) + coalesce(k.na30, 0) AS na30,
    coalesce(p0.s, 0) - coalesce(p7.s, 0) + coalesce(k.s7, 0) AS s7,
    coalesce(p0.s, 0) - coalesce(p30.s, 0) + coalesce(k.s30, 0) AS s30
  FROM labels l
  ASOF LEFT JOIN pa p0 ON l.user_id = p0.user_id AND p0.av < l.event_timestamp
  ASOF LEFT JOIN pt p7 ON l.user_id = p7.user_id AND p7.ts < l.event_timestamp - INTERVAL 7 DAY
  ASOF LEFT JOIN pt p30 ON l.user_id = p30.user_id
                       AND p30.ts < l.event_timestamp - INTERVAL 30 DAY
  LEFT JOIN corr k ON k.__row = l.__row
)
SELECT * EXCLUDE (n7, n30, na7, na30, s7, s30),
  CAST(n7 AS BIGINT) AS orders_7d,
  CAST(n30 AS BIGINT) AS orders_30d,
  CASE WHEN na7 > 0 THEN s7 END AS spend_7d,
  CASE WHEN na30 > 0 THEN s30 END AS spend_30d
FROM x
