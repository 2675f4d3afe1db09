WITH "user_orders__spine" AS (
  /* user_orders: ttl range join, count(*) over 7d range join, sum(__a0) over 30d range join */
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
    "src"."amount" AS "__a0"
  FROM "orders" AS "src"
  WHERE
    NOT "src"."user_id" IS NULL
    AND NOT "src"."event_timestamp" IS NULL
    AND NOT "src"."created_at" IS NULL
    AND (
      "src"."status" = 'completed'
    )
), "user_orders__wspine" AS (
  SELECT
    "user_id",
    "__t",
    FLOOR(CAST(DATE_PART('epoch', "__t") AS DOUBLE PRECISION) / 5184000) AS "__b"
  FROM "user_orders__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(CAST(DATE_PART('epoch', "__t") AS DOUBLE PRECISION) / 5184000) - 1 AS "__b"
  FROM "user_orders__spine"
), "user_orders__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    "__created",
    "__a0",
    FLOOR(CAST(DATE_PART('epoch', "__ts") AS DOUBLE PRECISION) / 5184000) AS "__b"
  FROM "user_orders__events"
), "user_orders__wjoin" AS (
  SELECT
    "s"."user_id",
    "s"."__t",
    "e"."__ts",
    "e"."__a0"
  FROM "user_orders__wspine" AS "s"
  INNER JOIN "user_orders__wevents" AS "e"
    ON "s"."user_id" = "e"."user_id"
    AND "s"."__b" = "e"."__b"
    AND "e"."__ts" >= "s"."__t" - INTERVAL '60 DAY'
    AND "e"."__ts" < "s"."__t"
    AND "e"."__avail" < "s"."__t"
), "user_orders__wagg" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '7 DAY' THEN 1 END) AS "__r0",
    SUM(CASE WHEN "__ts" >= "__t" - INTERVAL '30 DAY' THEN "__a0" END) AS "__r1",
    COUNT(*) AS "__ttl"
  FROM "user_orders__wjoin"
  GROUP BY
    "user_id",
    "__t"
)
SELECT
  "l".*,
  CASE
    WHEN COALESCE("v0r0"."__ttl", 0) > 0
    THEN CAST("v0r0"."__r1" AS DOUBLE PRECISION)
  END AS "spend_30d",
  CASE
    WHEN COALESCE("v0r0"."__ttl", 0) > 0
    THEN CAST(COALESCE("v0r0"."__r0", 0) AS BIGINT)
  END AS "orders_7d"
FROM "labels" AS "l"
LEFT JOIN "user_orders__wagg" AS "v0r0"
  ON "l"."user_id" = "v0r0"."user_id" AND "l"."event_timestamp" = "v0r0"."__t"
