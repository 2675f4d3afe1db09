WITH "user_orders__spine" AS (
  /* user_orders: ttl range join, count(*) over 7d range join, count(*) over 30d range join, sum(__a0) over 30d range join, avg(__a0) over 30d range join, min(__a0) over 7d range join, max(__a0) over 90d range join, last(__a0) asof, count_distinct(__a1) over 30d range join */
  SELECT DISTINCT
    "user_id",
    "event_timestamp" AS "__t"
  FROM "labels"
), "user_orders__events" AS (
  SELECT
    "src"."user_id" AS "user_id",
    "src"."event_timestamp" AS "__ts",
    "src"."created_at" AS "__created",
    CASE
      WHEN "src"."created_at" > "src"."event_timestamp"
      THEN "src"."created_at"
      ELSE "src"."event_timestamp"
    END AS "__avail",
    "src"."amount" AS "__a0",
    DATE_TRUNC('DAY', "src"."event_timestamp") AS "__a1"
  FROM "orders" AS "src"
  WHERE
    NOT "src"."user_id" IS NULL
    AND NOT "src"."event_timestamp" IS NULL
    AND NOT "src"."created_at" IS NULL
    AND (
      "src"."status" = 'completed'
    )
), "user_orders__visible" AS (
  SELECT
    "user_id",
    "__avail",
    MAX({'t': "__ts", 'c': "__created", 'v': "__a0"}) FILTER(WHERE
      NOT "__a0" IS NULL) OVER (
      PARTITION BY "user_id"
      ORDER BY "__avail"
      RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__r6"
  FROM "user_orders__events"
), "user_orders__match" AS (
  SELECT
    "m"."user_id",
    "m"."__avail",
    "m"."__r6"."v" AS "__r6"
  FROM "user_orders__visible" AS "m"
), "user_orders__wspine" AS (
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 7776000) AS "__b"
  FROM "user_orders__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 7776000) - 1 AS "__b"
  FROM "user_orders__spine"
), "user_orders__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    "__created",
    "__a0",
    "__a1",
    FLOOR(EPOCH("__ts") / 7776000) AS "__b"
  FROM "user_orders__events"
), "user_orders__wjoin" AS (
  SELECT
    "s"."user_id",
    "s"."__t",
    "e"."__ts",
    "e"."__a0",
    "e"."__a1"
  FROM "user_orders__wspine" AS "s"
  INNER JOIN "user_orders__wevents" AS "e"
    ON "s"."user_id" = "e"."user_id"
    AND "s"."__b" = "e"."__b"
    AND "e"."__ts" >= "s"."__t" - INTERVAL '90' DAY
    AND "e"."__ts" < "s"."__t"
    AND "e"."__avail" < "s"."__t"
), "user_orders__wdistinct7" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(*) AS "__r7"
  FROM (
    SELECT DISTINCT
      "user_id",
      "__t",
      "__a1"
    FROM "user_orders__wjoin"
    WHERE
      "__ts" >= "__t" - INTERVAL '30' DAY AND NOT "__a1" IS NULL
  ) AS "d"
  GROUP BY
    "user_id",
    "__t"
), "user_orders__wagg" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '7' DAY THEN 1 END) AS "__r0",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '30' DAY THEN 1 END) AS "__r1",
    SUM(CASE WHEN "__ts" >= "__t" - INTERVAL '30' DAY THEN "__a0" END) AS "__r2",
    AVG(CAST(CASE WHEN "__ts" >= "__t" - INTERVAL '30' DAY THEN "__a0" END AS DOUBLE)) AS "__r3",
    MIN(CASE WHEN "__ts" >= "__t" - INTERVAL '7' DAY THEN "__a0" END) AS "__r4",
    MAX("__a0") AS "__r5",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '60' DAY THEN 1 END) AS "__ttl"
  FROM "user_orders__wjoin"
  GROUP BY
    "user_id",
    "__t"
)
SELECT
  "l".*,
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("v0r1"."__r0", 0) AS BIGINT)
  END AS "orders_7d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("v0r1"."__r1", 0) AS BIGINT)
  END AS "orders_30d",
  CASE WHEN COALESCE("v0r1"."__ttl", 0) > 0 THEN CAST("v0r1"."__r2" AS DOUBLE) END AS "spend_30d",
  CASE WHEN COALESCE("v0r1"."__ttl", 0) > 0 THEN CAST("v0r1"."__r3" AS DOUBLE) END AS "avg_amount_30d",
  CASE WHEN COALESCE("v0r1"."__ttl", 0) > 0 THEN CAST("v0r1"."__r4" AS DOUBLE) END AS "min_amount_7d",
  CASE WHEN COALESCE("v0r1"."__ttl", 0) > 0 THEN CAST("v0r1"."__r5" AS DOUBLE) END AS "max_amount_90d",
  CASE WHEN COALESCE("v0r1"."__ttl", 0) > 0 THEN CAST("v0m0"."__r6" AS DOUBLE) END AS "last_amount",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("v0r0"."__r7", 0) AS BIGINT)
  END AS "active_days_30d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST("v0r1"."__r2" / NULLIF(NULLIF(COALESCE("v0r1"."__r1", 0), 0), 0) AS DOUBLE)
  END AS "spend_per_order_30d"
FROM "labels" AS "l"
LEFT JOIN "user_orders__wdistinct7" AS "v0r0"
  ON "l"."user_id" = "v0r0"."user_id" AND "l"."event_timestamp" = "v0r0"."__t"
LEFT JOIN "user_orders__wagg" AS "v0r1"
  ON "l"."user_id" = "v0r1"."user_id" AND "l"."event_timestamp" = "v0r1"."__t"
ASOF LEFT JOIN "user_orders__match" AS "v0m0"
  ON "l"."user_id" = "v0m0"."user_id" AND "v0m0"."__avail" < "l"."event_timestamp"
