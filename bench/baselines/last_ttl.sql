-- Shape last_ttl (issue #10, case 1): `last(amount)`, `last(status)` under `ttl 90d`, no
-- `created`. One ASOF LEFT JOIN per label to the latest event before T; the TTL is tested on the
-- matched row's timestamp (the latest visible event lies in [T - 90d, T) or none does).
-- Ties at one timestamp go to the greater value, and each `last` skips its nulls, so events are
-- first reduced to one row per (user, ts) and each value carried forward past its nulls.
WITH g AS (
  SELECT user_id, event_timestamp AS ts, max(amount) AS a, max(status) AS s
  FROM orders
  WHERE user_id IS NOT NULL AND event_timestamp IS NOT NULL
  GROUP BY ALL
),
c AS (
  SELECT user_id, ts,
         last_value(a IGNORE NULLS) OVER w AS a,
         last_value(s IGNORE NULLS) OVER w AS s
  FROM g
  WINDOW w AS (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING)
)
SELECT l.*,
  CASE WHEN c.ts >= l.event_timestamp - INTERVAL 90 DAY THEN c.a END AS last_amount,
  CASE WHEN c.ts >= l.event_timestamp - INTERVAL 90 DAY THEN c.s END AS last_status
FROM labels l
ASOF LEFT JOIN c ON l.user_id = c.user_id AND c.ts < l.event_timestamp
