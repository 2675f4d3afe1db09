WITH "user_orders__spine" AS (
  /* user_orders: ttl range join, count(*) over 7d range join, count(*) over 30d range join, sum(__a0) over 30d range join, avg(__a0) over 30d range join, min(__a0) over 7d range join, max(__a0) over 90d range join, count(__a0) over 30d range join, last(__a0) running, first(__a0) over 30d range join, last_k(__a0, 3) range join, count_distinct(__a1) over 30d range join */
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
), "user_orders__wspine" AS (
  SELECT
    "user_id",
    "__t",
    FLOOR(CAST(DATE_PART('epoch', "__t") AS DOUBLE PRECISION) / 7776000) AS "__b"
  FROM "user_orders__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(CAST(DATE_PART('epoch', "__t") AS DOUBLE PRECISION) / 7776000) - 1 AS "__b"
  FROM "user_orders__spine"
), "user_orders__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    "__created",
    "__a0",
    "__a1",
    FLOOR(CAST(DATE_PART('epoch', "__ts") AS DOUBLE PRECISION) / 7776000) AS "__b"
  FROM "user_orders__events"
), "user_orders__wjoin" AS (
  SELECT
    "s"."user_id",
    "s"."__t",
    "e"."__ts",
    "e"."__a0",
    "e"."__a1",
    CASE
      WHEN "e"."__ts" >= "s"."__t" - INTERVAL '30 DAY' AND NOT "e"."__a0" IS NULL
      THEN 1
      ELSE 0
    END AS "__v8",
    ROW_NUMBER() OVER (
      PARTITION BY "s"."user_id", "s"."__t", CASE
        WHEN "e"."__ts" >= "s"."__t" - INTERVAL '30 DAY' AND NOT "e"."__a0" IS NULL
        THEN 1
        ELSE 0
      END
      ORDER BY "e"."__ts" ASC, "e"."__created" ASC, "e"."__a0" ASC
    ) AS "__n8"
  FROM "user_orders__wspine" AS "s"
  INNER JOIN "user_orders__wevents" AS "e"
    ON "s"."user_id" = "e"."user_id"
    AND "s"."__b" = "e"."__b"
    AND "e"."__ts" >= "s"."__t" - INTERVAL '90 DAY'
    AND "e"."__ts" < "s"."__t"
    AND "e"."__avail" < "s"."__t"
), "user_orders__wdistinct10" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(*) AS "__r10"
  FROM (
    SELECT DISTINCT
      "user_id",
      "__t",
      "__a1"
    FROM "user_orders__wjoin"
    WHERE
      "__ts" >= "__t" - INTERVAL '30 DAY' AND NOT "__a1" IS NULL
  ) AS "d"
  GROUP BY
    "user_id",
    "__t"
), "user_orders__wagg" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '7 DAY' THEN 1 END) AS "__r0",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '30 DAY' THEN 1 END) AS "__r1",
    SUM(CASE WHEN "__ts" >= "__t" - INTERVAL '30 DAY' THEN "__a0" END) AS "__r2",
    AVG(
      CAST(CASE WHEN "__ts" >= "__t" - INTERVAL '30 DAY' THEN "__a0" END AS DOUBLE PRECISION)
    ) AS "__r3",
    MIN(CASE WHEN "__ts" >= "__t" - INTERVAL '7 DAY' THEN "__a0" END) AS "__r4",
    MAX("__a0") AS "__r5",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '30 DAY' THEN "__a0" END) AS "__r6",
    MAX(CASE WHEN "__v8" = 1 AND "__n8" = 1 THEN "__a0" END) AS "__r8",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '60 DAY' THEN 1 END) AS "__ttl"
  FROM "user_orders__wjoin"
  GROUP BY
    "user_id",
    "__t"
), "user_orders__ujoin" AS (
  SELECT
    "s"."user_id",
    "s"."__t",
    "e"."__ts",
    "e"."__a0",
    CASE WHEN NOT "e"."__a0" IS NULL THEN 1 ELSE 0 END AS "__v9",
    ROW_NUMBER() OVER (
      PARTITION BY "s"."user_id", "s"."__t", CASE WHEN NOT "e"."__a0" IS NULL THEN 1 ELSE 0 END
      ORDER BY "e"."__ts" DESC NULLS LAST, "e"."__created" DESC NULLS LAST, "e"."__a0" DESC NULLS LAST
    ) AS "__n9"
  FROM "user_orders__spine" AS "s"
  INNER JOIN "user_orders__events" AS "e"
    ON "s"."user_id" = "e"."user_id"
    AND "e"."__ts" < "s"."__t"
    AND "e"."__avail" < "s"."__t"
), "user_orders__uagg" AS (
  SELECT
    "user_id",
    "__t",
    JSON_PARSE(
      '[' || LISTAGG(CASE WHEN "__v9" = 1 AND "__n9" <= 3 THEN CAST("__a0" AS VARCHAR) END, ',') WITHIN GROUP (ORDER BY
        "__n9") || ']'
    ) AS "__r9"
  FROM "user_orders__ujoin"
  GROUP BY
    "user_id",
    "__t"
), "user_orders__ranked" AS (
  SELECT
    "e"."user_id",
    "e"."__ts",
    "e"."__avail",
    "e"."__created",
    "e"."__a0",
    CASE
      WHEN NOT "e"."__a0" IS NULL
      THEN ROW_NUMBER() OVER (
        PARTITION BY "e"."user_id", CASE WHEN NOT "e"."__a0" IS NULL THEN 1 ELSE 0 END
        ORDER BY "e"."__ts" ASC, "e"."__created" ASC, "e"."__a0" ASC
      )
    END AS "__k0"
  FROM "user_orders__events" AS "e"
  WHERE
    EXISTS(
      SELECT
        1
      FROM "user_orders__spine" AS "sp"
      WHERE
        "sp"."user_id" = "e"."user_id"
    )
), "user_orders__stream" AS (
  SELECT
    "user_id",
    "__t" AS "__at",
    0 AS "__kind",
    "__t",
    CAST(NULL AS BIGINT) AS "__k0"
  FROM "user_orders__spine"
  UNION ALL
  SELECT
    "user_id",
    "__avail" AS "__at",
    1 AS "__kind",
    CAST(NULL AS TIMESTAMP) AS "__t",
    "__k0"
  FROM "user_orders__ranked"
), "user_orders__running" AS (
  SELECT
    "user_id",
    "__t",
    "__kind",
    MAX("__k0") OVER (
      PARTITION BY "user_id"
      ORDER BY "__at", "__kind"
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__r7"
  FROM "user_orders__stream"
), "user_orders__cagg" AS (
  SELECT
    "r"."user_id",
    "r"."__t",
    "x7"."__a0" AS "__r7"
  FROM "user_orders__running" AS "r"
  LEFT JOIN "user_orders__ranked" AS "x7"
    ON "r"."user_id" = "x7"."user_id" AND "x7"."__k0" = "r"."__r7"
  WHERE
    "r"."__kind" = 0
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
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST("v0r1"."__r2" AS DOUBLE PRECISION)
  END AS "spend_30d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST("v0r1"."__r3" AS DOUBLE PRECISION)
  END AS "avg_amount_30d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST("v0r1"."__r4" AS DOUBLE PRECISION)
  END AS "min_amount_7d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST("v0r1"."__r5" AS DOUBLE PRECISION)
  END AS "max_amount_90d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("v0r1"."__r6", 0) AS BIGINT)
  END AS "priced_30d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST("v0r3"."__r7" AS DOUBLE PRECISION)
  END AS "last_amount",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST("v0r1"."__r8" AS DOUBLE PRECISION)
  END AS "first_amount_30d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN COALESCE("v0r2"."__r9", JSON_PARSE('[]'))
  END AS "recent_amounts",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("v0r0"."__r10", 0) AS BIGINT)
  END AS "active_days_30d",
  CASE
    WHEN COALESCE("v0r1"."__ttl", 0) > 0
    THEN CAST(CAST("v0r1"."__r2" AS DOUBLE PRECISION) / NULLIF(NULLIF(COALESCE("v0r1"."__r1", 0), 0), 0) AS DOUBLE PRECISION)
  END AS "spend_per_order_30d"
FROM "labels" AS "l"
LEFT JOIN "user_orders__wdistinct10" AS "v0r0"
  ON "l"."user_id" = "v0r0"."user_id" AND "l"."event_timestamp" = "v0r0"."__t"
LEFT JOIN "user_orders__wagg" AS "v0r1"
  ON "l"."user_id" = "v0r1"."user_id" AND "l"."event_timestamp" = "v0r1"."__t"
LEFT JOIN "user_orders__uagg" AS "v0r2"
  ON "l"."user_id" = "v0r2"."user_id" AND "l"."event_timestamp" = "v0r2"."__t"
LEFT JOIN "user_orders__cagg" AS "v0r3"
  ON "l"."user_id" = "v0r3"."user_id" AND "l"."event_timestamp" = "v0r3"."__t"
