-- Shape windowed_sums (issue #10, case 2): `count(*)`, `sum(amount)` over 7d and 30d, filtered,
-- no `created`. Running sums per user in event order (one row per (user, ts), so ties are whole),
-- read by three ASOF joins: before T, before T - 7d, before T - 30d. A window's value is the
-- difference; its sum is null when it holds no non-null amount.
WITH g AS (
  SELECT user_id, event_timestamp AS ts,
         count(*) AS n, count(amount) AS na, sum(amount) AS s
  FROM orders
  WHERE status = 'completed' AND user_id IS NOT NULL AND event_timestamp IS NOT NULL
  GROUP BY ALL
),
p AS (
  SELECT user_id, ts, sum(n) OVER w AS n, sum(na) OVER w AS na, sum(s) OVER w AS s
  FROM g
  WINDOW w AS (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING)
)
SELECT l.*,
  CAST(coalesce(p0.n, 0) - coalesce(p7.n, 0) AS BIGINT) AS orders_7d,
  CAST(coalesce(p0.n, 0) - coalesce(p30.n, 0) AS BIGINT) AS orders_30d,
  CASE WHEN coalesce(p0.na, 0) > coalesce(p7.na, 0) THEN p0.s - coalesce(p7.s, 0) END AS spend_7d,
  CASE WHEN coalesce(p0.na, 0) > coalesce(p30.na, 0) THEN p0.s - coalesce(p30.s, 0) END
    AS spend_30d
FROM labels l
ASOF LEFT JOIN p p0 ON l.user_id = p0.user_id AND p0.ts < l.event_timestamp
ASOF LEFT JOIN p p7 ON l.user_id = p7.user_id AND p7.ts < l.event_timestamp - INTERVAL 7 DAY
ASOF LEFT JOIN p p30 ON l.user_id = p30.user_id AND p30.ts < l.event_timestamp - INTERVAL 30 DAY
