-- Shape windowed_sums on Postgres without an index: the portable "carry forward". Running sums
-- per user in event order (one row per (user, ts), so the running count rises at every row and
-- names it); three probes per label (T, T - 7d, T - 30d) sorted with the events, each probe
-- before the events of its own timestamp (strict <), carry the running count forward; a join
-- on (user, count) reads the sums there. A window's value is the difference of two probes.
WITH g AS (
  SELECT user_id, event_timestamp AS ts, count(*) AS n, count(amount) AS na, sum(amount) AS s
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
  GROUP BY user_id, event_timestamp
),
p AS (
  SELECT user_id, ts,
    sum(n) OVER w AS n, sum(na) OVER w AS na, sum(s) OVER w AS s
  FROM g
  WINDOW w AS (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING)
),
probe AS (
  SELECT l.__row, k.d, l.user_id, l.event_timestamp - k.d * INTERVAL '1 day' AS x
  FROM labels l CROSS JOIN (VALUES (0), (7), (30)) AS k (d)
),
u AS (
  SELECT user_id, x AS ts, 0 AS kind, __row, d, NULL::numeric AS n FROM probe
  UNION ALL
  SELECT user_id, ts, 1, NULL, NULL, n FROM p
),
c AS (
  SELECT __row, d, user_id,
    max(n) OVER (PARTITION BY user_id ORDER BY ts, kind ROWS UNBOUNDED PRECEDING) AS n
  FROM u
),
r AS (
  SELECT c.__row, c.d, coalesce(p.n, 0) AS n, coalesce(p.na, 0) AS na, p.s
  FROM c LEFT JOIN p ON p.user_id = c.user_id AND p.n = c.n
  WHERE c.__row IS NOT NULL
),
w AS (
  SELECT __row,
    max(n) FILTER (WHERE d = 0) AS n0, max(n) FILTER (WHERE d = 7) AS n7,
    max(n) FILTER (WHERE d = 30) AS n30,
    max(na) FILTER (WHERE d = 0) AS na0, max(na) FILTER (WHERE d = 7) AS na7,
    max(na) FILTER (WHERE d = 30) AS na30,
    max(s) FILTER (WHERE d = 0) AS s0, max(s) FILTER (WHERE d = 7) AS s7,
    max(s) FILTER (WHERE d = 30) AS s30
  FROM r GROUP BY __row
)
SELECT l.*,
  CAST(w.n0 - w.n7 AS bigint) AS orders_7d,
  CAST(w.n0 - w.n30 AS bigint) AS orders_30d,
  CASE WHEN w.na0 > w.na7 THEN w.s0 - coalesce(w.s7, 0) END AS spend_7d,
  CASE WHEN w.na0 > w.na30 THEN w.s0 - coalesce(w.s30, 0) END AS spend_30d
FROM labels l JOIN w ON w.__row = l.__row
