WITH "device_owner__events" AS (
  /* device_owner: ttl asof, last(__a0) asof, last(__a1) asof */
  SELECT
    "src"."device_id" AS "device_id",
    "src"."linked_at" AS "__ts",
    "src"."ingested_at" AS "__created",
    CASE
      WHEN "src"."ingested_at" > "src"."linked_at"
      THEN "src"."ingested_at"
      ELSE "src"."linked_at"
    END AS "__avail",
    CASE WHEN "src"."user_id" IS NULL THEN 1 ELSE 0 END AS "__a0",
    "src"."user_id" AS "__a1"
  FROM "device_links" AS "src"
  WHERE
    NOT "src"."device_id" IS NULL
    AND NOT "src"."linked_at" IS NULL
    AND NOT "src"."ingested_at" IS NULL
), "device_owner__visible" AS (
  SELECT
    "device_id",
    "__avail",
    MAX("__ts") OVER (
      PARTITION BY "device_id"
      ORDER BY "__avail"
      RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__lt",
    MAX({'t': "__ts", 'c': "__created", 'v': "__a0"}) FILTER(WHERE
      NOT "__a0" IS NULL) OVER (
      PARTITION BY "device_id"
      ORDER BY "__avail"
      RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__r0",
    MAX({'t': "__ts", 'c': "__created", 'v': "__a1"}) FILTER(WHERE
      NOT "__a1" IS NULL) OVER (
      PARTITION BY "device_id"
      ORDER BY "__avail"
      RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__r1"
  FROM "device_owner__events"
), "device_owner__match" AS (
  SELECT
    "m"."device_id",
    "m"."__avail",
    "m"."__lt",
    "m"."__r0"."v" AS "__r0",
    "m"."__r1"."v" AS "__r1"
  FROM "device_owner__visible" AS "m"
), "__fsdsl_resolved_0" AS (
  SELECT
    "l".*,
    CASE
      WHEN "v0m0"."__lt" >= "l"."event_timestamp" - INTERVAL '365' DAY
      THEN CAST(CASE WHEN "v0m0"."__r0" = 0 THEN "v0m0"."__r1" END AS TEXT)
    END AS "user_id"
  FROM "labels" AS "l"
  ASOF LEFT JOIN "device_owner__match" AS "v0m0"
    ON "l"."device_id" = "v0m0"."device_id" AND "v0m0"."__avail" < "l"."event_timestamp"
), "user_orders__spine" AS (
  /* user_orders: ttl asof, count(*) over 7d range join, sum(__a0) over 30d range join */
  SELECT DISTINCT
    "user_id",
    "event_timestamp" AS "__t"
  FROM "__fsdsl_resolved_0"
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
), "user_orders__visible" AS (
  SELECT
    "user_id",
    "__avail",
    MAX("__ts") OVER (
      PARTITION BY "user_id"
      ORDER BY "__avail"
      RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__lt"
  FROM "user_orders__events"
), "user_orders__match" AS (
  SELECT
    "m"."user_id",
    "m"."__avail",
    "m"."__lt"
  FROM "user_orders__visible" AS "m"
), "user_orders__wspine" AS (
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 2592000) AS "__b"
  FROM "user_orders__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 2592000) - 1 AS "__b"
  FROM "user_orders__spine"
), "user_orders__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    "__created",
    "__a0",
    FLOOR(EPOCH("__ts") / 2592000) AS "__b"
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
    AND "e"."__ts" >= "s"."__t" - INTERVAL '30' DAY
    AND "e"."__ts" < "s"."__t"
    AND "e"."__avail" < "s"."__t"
), "user_orders__wagg" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '7' DAY THEN 1 END) AS "__r0",
    SUM("__a0") AS "__r1"
  FROM "user_orders__wjoin"
  GROUP BY
    "user_id",
    "__t"
), "user_browsing__spine" AS (
  /* user_browsing: ttl asof, count(*) over 1h range join */
  SELECT DISTINCT
    "user_id",
    "event_timestamp" AS "__t"
  FROM "__fsdsl_resolved_0"
), "user_browsing__events" AS (
  SELECT
    "src"."visitor_id" AS "user_id",
    "src"."viewed_at" AS "__ts",
    "src"."viewed_at" AS "__avail"
  FROM "web"."page_views" AS "src"
  WHERE
    NOT "src"."visitor_id" IS NULL AND NOT "src"."viewed_at" IS NULL
), "user_browsing__wspine" AS (
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 3600) AS "__b"
  FROM "user_browsing__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 3600) - 1 AS "__b"
  FROM "user_browsing__spine"
), "user_browsing__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    FLOOR(EPOCH("__ts") / 3600) AS "__b"
  FROM "user_browsing__events"
), "user_browsing__wjoin" AS (
  SELECT
    "s"."user_id",
    "s"."__t",
    "e"."__ts"
  FROM "user_browsing__wspine" AS "s"
  INNER JOIN "user_browsing__wevents" AS "e"
    ON "s"."user_id" = "e"."user_id"
    AND "s"."__b" = "e"."__b"
    AND "e"."__ts" >= "s"."__t" - INTERVAL '1' HOUR
    AND "e"."__ts" < "s"."__t"
), "user_browsing__wagg" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(*) AS "__r0"
  FROM "user_browsing__wjoin"
  GROUP BY
    "user_id",
    "__t"
)
SELECT
  "l".*,
  CASE
    WHEN "v1m0"."__lt" >= "l"."event_timestamp" - INTERVAL '60' DAY
    THEN CAST("v1r0"."__r1" AS DOUBLE)
  END AS "spend_30d",
  CASE
    WHEN "v1m0"."__lt" >= "l"."event_timestamp" - INTERVAL '60' DAY
    THEN CAST(COALESCE("v1r0"."__r0", 0) AS BIGINT)
  END AS "orders_7d",
  CASE
    WHEN "v2m0"."__ts" >= "l"."event_timestamp" - INTERVAL '30' DAY
    THEN CAST(COALESCE("v2r0"."__r0", 0) AS BIGINT)
  END AS "views_1h"
FROM "__fsdsl_resolved_0" AS "l"
LEFT JOIN "user_orders__wagg" AS "v1r0"
  ON "l"."user_id" = "v1r0"."user_id" AND "l"."event_timestamp" = "v1r0"."__t"
ASOF LEFT JOIN "user_orders__match" AS "v1m0"
  ON "l"."user_id" = "v1m0"."user_id" AND "v1m0"."__avail" < "l"."event_timestamp"
LEFT JOIN "user_browsing__wagg" AS "v2r0"
  ON "l"."user_id" = "v2r0"."user_id" AND "l"."event_timestamp" = "v2r0"."__t"
ASOF LEFT JOIN "user_browsing__events" AS "v2m0"
  ON "l"."user_id" = "v2m0"."user_id" AND "v2m0"."__ts" < "l"."event_timestamp"
