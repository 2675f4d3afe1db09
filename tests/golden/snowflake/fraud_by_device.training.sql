WITH "device_owner__spine" AS (
  /* device_owner: ttl running, last(__a0) running, last(__a1) running */
  SELECT DISTINCT
    "device_id",
    "event_timestamp" AS "__t"
  FROM "labels"
), "device_owner__events" AS (
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
), "device_owner__ranked" AS (
  SELECT
    "e"."device_id",
    "e"."__ts",
    "e"."__avail",
    "e"."__created",
    "e"."__a0",
    CASE
      WHEN NOT "e"."__a0" IS NULL
      THEN ROW_NUMBER() OVER (
        PARTITION BY "e"."device_id", CASE WHEN NOT "e"."__a0" IS NULL THEN 1 ELSE 0 END
        ORDER BY "e"."__ts" ASC, "e"."__created" ASC, "e"."__a0" ASC
      )
    END AS "__k0",
    "e"."__a1",
    CASE
      WHEN NOT "e"."__a1" IS NULL
      THEN ROW_NUMBER() OVER (
        PARTITION BY "e"."device_id", CASE WHEN NOT "e"."__a1" IS NULL THEN 1 ELSE 0 END
        ORDER BY "e"."__ts" ASC, "e"."__created" ASC, "e"."__a1" ASC
      )
    END AS "__k1"
  FROM "device_owner__events" AS "e"
  WHERE
    EXISTS(
      SELECT
        1
      FROM "device_owner__spine" AS "sp"
      WHERE
        "sp"."device_id" = "e"."device_id"
    )
), "device_owner__stream" AS (
  SELECT
    "device_id",
    "__t" AS "__at",
    0 AS "__kind",
    "__t",
    CAST(NULL AS BIGINT) AS "__k0",
    CAST(NULL AS BIGINT) AS "__k1",
    CAST(NULL AS TIMESTAMP) AS "__ts"
  FROM "device_owner__spine"
  UNION ALL
  SELECT
    "device_id",
    "__avail" AS "__at",
    1 AS "__kind",
    CAST(NULL AS TIMESTAMP) AS "__t",
    "__k0",
    "__k1",
    "__ts"
  FROM "device_owner__ranked"
), "device_owner__running" AS (
  SELECT
    "device_id",
    "__t",
    "__kind",
    MAX("__k0") OVER (
      PARTITION BY "device_id"
      ORDER BY "__at", "__kind"
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__r0",
    MAX("__k1") OVER (
      PARTITION BY "device_id"
      ORDER BY "__at", "__kind"
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__r1",
    MAX("__ts") OVER (
      PARTITION BY "device_id"
      ORDER BY "__at", "__kind"
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__lt"
  FROM "device_owner__stream"
), "device_owner__cagg" AS (
  SELECT
    "r"."device_id",
    "r"."__t",
    "x0"."__a0" AS "__r0",
    "x1"."__a1" AS "__r1",
    CASE WHEN "r"."__lt" >= "r"."__t" - INTERVAL '365 DAY' THEN 1 ELSE 0 END AS "__ttl"
  FROM "device_owner__running" AS "r"
  LEFT JOIN "device_owner__ranked" AS "x0"
    ON "r"."device_id" = "x0"."device_id" AND "x0"."__k0" = "r"."__r0"
  LEFT JOIN "device_owner__ranked" AS "x1"
    ON "r"."device_id" = "x1"."device_id" AND "x1"."__k1" = "r"."__r1"
  WHERE
    "r"."__kind" = 0
), "__fsdsl_resolved_0" AS (
  SELECT
    "l".*,
    CASE
      WHEN COALESCE("v0r0"."__ttl", 0) > 0
      THEN CAST(CASE WHEN "v0r0"."__r0" = 0 THEN "v0r0"."__r1" END AS VARCHAR)
    END AS "user_id"
  FROM "labels" AS "l"
  LEFT JOIN "device_owner__cagg" AS "v0r0"
    ON "l"."device_id" = "v0r0"."device_id" AND "l"."event_timestamp" = "v0r0"."__t"
), "user_orders__spine" AS (
  /* user_orders: ttl range join, count(*) over 7d range join, sum(__a0) over 30d range join */
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
), "user_orders__wspine" AS (
  SELECT
    "user_id",
    "__t",
    FLOOR(EXTRACT(epoch_second FROM "__t") / 5184000) AS "__b"
  FROM "user_orders__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(EXTRACT(epoch_second FROM "__t") / 5184000) - 1 AS "__b"
  FROM "user_orders__spine"
), "user_orders__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    "__created",
    "__a0",
    FLOOR(EXTRACT(epoch_second FROM "__ts") / 5184000) AS "__b"
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
), "user_browsing__spine" AS (
  /* user_browsing: ttl range join, count(*) over 1h range join */
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
    FLOOR(EXTRACT(epoch_second FROM "__t") / 2592000) AS "__b"
  FROM "user_browsing__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(EXTRACT(epoch_second FROM "__t") / 2592000) - 1 AS "__b"
  FROM "user_browsing__spine"
), "user_browsing__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    FLOOR(EXTRACT(epoch_second FROM "__ts") / 2592000) AS "__b"
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
    AND "e"."__ts" >= "s"."__t" - INTERVAL '30 DAY'
    AND "e"."__ts" < "s"."__t"
), "user_browsing__wagg" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '1 HOUR' THEN 1 END) AS "__r0",
    COUNT(*) AS "__ttl"
  FROM "user_browsing__wjoin"
  GROUP BY
    "user_id",
    "__t"
)
SELECT
  "l".*,
  CASE WHEN COALESCE("v1r0"."__ttl", 0) > 0 THEN CAST("v1r0"."__r1" AS DOUBLE) END AS "spend_30d",
  CASE
    WHEN COALESCE("v1r0"."__ttl", 0) > 0
    THEN CAST(COALESCE("v1r0"."__r0", 0) AS BIGINT)
  END AS "orders_7d",
  CASE
    WHEN COALESCE("v2r0"."__ttl", 0) > 0
    THEN CAST(COALESCE("v2r0"."__r0", 0) AS BIGINT)
  END AS "views_1h"
FROM "__fsdsl_resolved_0" AS "l"
LEFT JOIN "user_orders__wagg" AS "v1r0"
  ON "l"."user_id" = "v1r0"."user_id" AND "l"."event_timestamp" = "v1r0"."__t"
LEFT JOIN "user_browsing__wagg" AS "v2r0"
  ON "l"."user_id" = "v2r0"."user_id" AND "l"."event_timestamp" = "v2r0"."__t"
