WITH "user_browsing__events" AS (
  SELECT
    "src"."visitor_id" AS "user_id",
    "src"."viewed_at" AS "__ts",
    "src"."viewed_at" AS "__avail",
    CASE WHEN "src"."is_mobile" THEN 1.0 ELSE 0.0 END AS "__a0",
    "src"."dwell_seconds" AS "__a1",
    LOWER("src"."category") AS "__a2",
    "src"."category" AS "__a3",
    "src"."viewed_at" AS "__a4",
    "src"."product_id" AS "__a5"
  FROM "web"."page_views" AS "src"
  WHERE
    NOT "src"."visitor_id" IS NULL AND NOT "src"."viewed_at" IS NULL
), "user_browsing__spine" AS (
  SELECT DISTINCT
    "user_id",
    CAST($as_of AS TIMESTAMP) AS "__t"
  FROM "user_browsing__events"
  WHERE
    (
      "__avail" < CAST($as_of AS TIMESTAMP)
      AND (
        CAST($watermark AS TIMESTAMP) IS NULL
        OR "__avail" >= CAST($watermark AS TIMESTAMP)
      )
    )
    OR (
      "__ts" >= CAST($watermark AS TIMESTAMP) - INTERVAL '1' HOUR
      AND "__ts" < CAST($as_of AS TIMESTAMP) - INTERVAL '1' HOUR
    )
    OR (
      "__ts" >= CAST($watermark AS TIMESTAMP) - INTERVAL '24' HOUR
      AND "__ts" < CAST($as_of AS TIMESTAMP) - INTERVAL '24' HOUR
    )
    OR (
      "__ts" >= CAST($watermark AS TIMESTAMP) - INTERVAL '7' DAY
      AND "__ts" < CAST($as_of AS TIMESTAMP) - INTERVAL '7' DAY
    )
    OR (
      "__ts" >= CAST($watermark AS TIMESTAMP) - INTERVAL '14' DAY
      AND "__ts" < CAST($as_of AS TIMESTAMP) - INTERVAL '14' DAY
    )
    OR (
      "__ts" >= CAST($watermark AS TIMESTAMP) - INTERVAL '30' DAY
      AND "__ts" < CAST($as_of AS TIMESTAMP) - INTERVAL '30' DAY
    )
), "user_browsing__latest6" AS (
  SELECT
    "user_id",
    "__ts",
    MAX("__a3") AS "__v"
  FROM "user_browsing__events"
  WHERE
    NOT "__a3" IS NULL
  GROUP BY
    "user_id",
    "__ts"
), "user_browsing__asof6" AS (
  SELECT
    "s"."user_id",
    "s"."__t",
    "x"."__v" AS "__r6"
  FROM "user_browsing__spine" AS "s"
  ASOF LEFT JOIN "user_browsing__latest6" AS "x"
    ON "s"."user_id" = "x"."user_id" AND "x"."__ts" < "s"."__t"
), "user_browsing__wspine" AS (
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 2592000) AS "__b"
  FROM "user_browsing__spine"
  UNION ALL
  SELECT
    "user_id",
    "__t",
    FLOOR(EPOCH("__t") / 2592000) - 1 AS "__b"
  FROM "user_browsing__spine"
), "user_browsing__wevents" AS (
  SELECT
    "user_id",
    "__ts",
    "__avail",
    "__a0",
    "__a1",
    "__a2",
    "__a4",
    "__a5",
    FLOOR(EPOCH("__ts") / 2592000) AS "__b"
  FROM "user_browsing__events"
), "user_browsing__wjoin" AS (
  SELECT
    "s"."user_id",
    "s"."__t",
    "e"."__ts",
    "e"."__a0",
    "e"."__a1",
    "e"."__a2",
    "e"."__a4",
    "e"."__a5",
    CASE
      WHEN "e"."__ts" >= "s"."__t" - INTERVAL '14' DAY AND NOT "e"."__a4" IS NULL
      THEN 1
      ELSE 0
    END AS "__v8",
    ROW_NUMBER() OVER (
      PARTITION BY "s"."user_id", "s"."__t", CASE
        WHEN "e"."__ts" >= "s"."__t" - INTERVAL '14' DAY AND NOT "e"."__a4" IS NULL
        THEN 1
        ELSE 0
      END
      ORDER BY "e"."__ts" ASC, "e"."__a4" ASC
    ) AS "__n8",
    CASE
      WHEN "e"."__ts" >= "s"."__t" - INTERVAL '7' DAY AND NOT "e"."__a5" IS NULL
      THEN 1
      ELSE 0
    END AS "__v9",
    ROW_NUMBER() OVER (
      PARTITION BY "s"."user_id", "s"."__t", CASE
        WHEN "e"."__ts" >= "s"."__t" - INTERVAL '7' DAY AND NOT "e"."__a5" IS NULL
        THEN 1
        ELSE 0
      END
      ORDER BY "e"."__ts" DESC, "e"."__a5" DESC
    ) AS "__n9"
  FROM "user_browsing__wspine" AS "s"
  INNER JOIN "user_browsing__wevents" AS "e"
    ON "s"."user_id" = "e"."user_id"
    AND "s"."__b" = "e"."__b"
    AND "e"."__ts" >= "s"."__t" - INTERVAL '30' DAY
    AND "e"."__ts" < "s"."__t"
), "user_browsing__wagg" AS (
  SELECT
    "user_id",
    "__t",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '1' HOUR THEN 1 END) AS "__r0",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '24' HOUR THEN 1 END) AS "__r1",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '7' DAY THEN 1 END) AS "__r2",
    AVG(CAST(CASE WHEN "__ts" >= "__t" - INTERVAL '7' DAY THEN "__a0" END AS DOUBLE)) AS "__r3",
    SUM(CASE WHEN "__ts" >= "__t" - INTERVAL '7' DAY THEN "__a1" END) AS "__r4",
    COUNT(DISTINCT CASE WHEN "__ts" >= "__t" - INTERVAL '7' DAY THEN "__a2" END) AS "__r5",
    MAX(CASE WHEN "__v8" = 1 AND "__n8" = 1 THEN "__a4" END) AS "__r8",
    ARRAY_AGG("__a5" ORDER BY "__n9") FILTER(WHERE
      "__v9" = 1 AND "__n9" <= 5) AS "__r9",
    COUNT(CASE WHEN "__ts" >= "__t" - INTERVAL '24' HOUR THEN "__a1" END) AS "__r10",
    COUNT(*) AS "__ttl"
  FROM "user_browsing__wjoin"
  GROUP BY
    "user_id",
    "__t"
), "user_browsing__ranked" AS (
  SELECT
    "e"."user_id",
    "e"."__ts",
    "e"."__avail",
    "e"."__a4"
  FROM "user_browsing__events" AS "e"
  WHERE
    EXISTS(
      SELECT
        1
      FROM "user_browsing__spine" AS "sp"
      WHERE
        "sp"."user_id" = "e"."user_id"
    )
), "user_browsing__stream" AS (
  SELECT
    "user_id",
    "__t" AS "__at",
    0 AS "__kind",
    "__t",
    CAST(NULL AS TIMESTAMP) AS "__a4"
  FROM "user_browsing__spine"
  UNION ALL
  SELECT
    "user_id",
    "__avail" AS "__at",
    1 AS "__kind",
    CAST(NULL AS TIMESTAMP) AS "__t",
    "__a4"
  FROM "user_browsing__ranked"
), "user_browsing__running" AS (
  SELECT
    "user_id",
    "__t",
    "__kind",
    MAX("__a4") OVER (
      PARTITION BY "user_id"
      ORDER BY "__at", "__kind"
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS "__r7"
  FROM "user_browsing__stream"
), "user_browsing__cagg" AS (
  SELECT
    "r"."user_id",
    "r"."__t",
    "r"."__r7"
  FROM "user_browsing__running" AS "r"
  WHERE
    "r"."__kind" = 0
)
SELECT
  "s"."user_id",
  "s"."__t" AS "as_of",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("r1"."__r0", 0) AS BIGINT)
  END AS "views_1h",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("r1"."__r1", 0) AS BIGINT)
  END AS "views_24h",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("r1"."__r2", 0) AS BIGINT)
  END AS "views_7d",
  CASE WHEN COALESCE("r1"."__ttl", 0) > 0 THEN CAST("r1"."__r3" AS DOUBLE) END AS "mobile_share_7d",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN CAST("r1"."__r4" / NULLIF(NULLIF(COALESCE("r1"."__r2", 0), 0), 0) AS DOUBLE)
  END AS "dwell_per_view_7d",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("r1"."__r5", 0) AS BIGINT)
  END AS "categories_7d",
  CASE WHEN COALESCE("r1"."__ttl", 0) > 0 THEN CAST("r0"."__r6" AS TEXT) END AS "last_category",
  CASE WHEN COALESCE("r1"."__ttl", 0) > 0 THEN CAST("r2"."__r7" AS TIMESTAMP) END AS "last_view_at",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN CAST(EXTRACT(HOUR FROM "r1"."__r8") AS BIGINT)
  END AS "first_view_hour_2w",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN COALESCE("r1"."__r9", CAST([] AS TEXT[]))
  END AS "recent_products",
  CASE
    WHEN COALESCE("r1"."__ttl", 0) > 0
    THEN CAST(COALESCE("r1"."__r10", 0) AS BIGINT)
  END AS "long_views_24h"
FROM "user_browsing__spine" AS "s"
LEFT JOIN "user_browsing__asof6" AS "r0"
  ON "s"."user_id" = "r0"."user_id" AND "s"."__t" = "r0"."__t"
LEFT JOIN "user_browsing__wagg" AS "r1"
  ON "s"."user_id" = "r1"."user_id" AND "s"."__t" = "r1"."__t"
LEFT JOIN "user_browsing__cagg" AS "r2"
  ON "s"."user_id" = "r2"."user_id" AND "s"."__t" = "r2"."__t"
