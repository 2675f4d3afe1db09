-- Shape windowed_sums on Postgres: per label, one LATERAL aggregate over its user's events of
-- the widest window, read by an index range scan on orders (user_id, event_timestamp); the 7d
-- window is a FILTER. An aggregate without GROUP BY always yields a row: counts 0, sums null.
SELECT l.*,
  w.n7 AS orders_7d, w.n30 AS orders_30d, w.s7 AS spend_7d, w.s30 AS spend_30d
FROM labels l
CROSS JOIN LATERAL (
  SELECT
    count(*) FILTER (WHERE o.event_timestamp >= l.event_timestamp - INTERVAL '7 days') AS n7,
    count(*) AS n30,
    sum(o.amount) FILTER (WHERE o.event_timestamp >= l.event_timestamp - INTERVAL '7 days')
      AS s7,
    sum(o.amount) AS s30
  FROM orders o
  WHERE o.user_id = l.user_id AND o.status = 'completed'
    AND o.event_timestamp >= l.event_timestamp - INTERVAL '30 days'
    AND o.event_timestamp < l.event_timestamp
) w
