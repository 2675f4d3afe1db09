-- Shape last_ttl on Postgres (no ASOF join): per label, `LATERAL ... ORDER BY ts DESC LIMIT 1`
-- on the index orders (user_id, event_timestamp) that bench/training_set_pg.py creates. The
-- first lookup finds the latest event (the TTL is tested on its timestamp); the value lookups
-- skip their nulls, break ties at one timestamp by the greater value, and run only for labels
-- alive under the TTL.
SELECT l.*,
  a.amount AS last_amount,
  s.status AS last_status
FROM labels l
LEFT JOIN LATERAL (
  SELECT o.event_timestamp AS ts FROM orders o
  WHERE o.user_id = l.user_id AND o.event_timestamp < l.event_timestamp
  ORDER BY o.event_timestamp DESC LIMIT 1
) t ON true
LEFT JOIN LATERAL (
  SELECT o.amount FROM orders o
  WHERE t.ts >= l.event_timestamp - INTERVAL '90 days'
    AND o.user_id = l.user_id AND o.event_timestamp < l.event_timestamp
    AND o.amount IS NOT NULL
  ORDER BY o.event_timestamp DESC, o.amount DESC LIMIT 1
) a ON true
LEFT JOIN LATERAL (
  SELECT o.status FROM orders o
  WHERE t.ts >= l.event_timestamp - INTERVAL '90 days'
    AND o.user_id = l.user_id AND o.event_timestamp < l.event_timestamp
    AND o.status IS NOT NULL
  ORDER BY o.event_timestamp DESC, o.status DESC LIMIT 1
) s ON true
