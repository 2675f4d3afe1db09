WITH "device_owner__events" AS (
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
    (
      NOT "src"."device_id" IS NULL
      AND NOT "src"."linked_at" IS NULL
      AND NOT "src"."ingested_at" IS NULL
    )
    AND (
      CAST(:watermark AS TIMESTAMP) IS NULL
      OR "src"."linked_at" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '365' DAY
      OR "src"."ingested_at" >= CAST(:watermark AS TIMESTAMP)
    )
), "device_owner__delta" AS (
  SELECT
    "device_id",
    "__ts",
    CASE
      WHEN "__avail" < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR "__avail" >= CAST(:watermark AS TIMESTAMP)
      )
      THEN 1
      ELSE 0
    END AS "__new",
    0 AS "__dirty"
  FROM "device_owner__events"
  WHERE
    (
      "__avail" < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR "__avail" >= CAST(:watermark AS TIMESTAMP)
      )
      OR "__avail" < CAST(:watermark AS TIMESTAMP)
      AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '365' DAY
      AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '365' DAY
    )
  UNION ALL
  SELECT
    "device_id",
    CAST(NULL AS TIMESTAMP) AS "__ts",
    0 AS "__new",
    1 AS "__dirty"
  FROM "__fsdsl_dirty_device_owner"
), "device_owner__changed" AS (
  SELECT
    "device_id",
    MAX("__dirty") AS "__dirty"
  FROM "device_owner__delta"
  GROUP BY
    "device_id"
), "device_owner__rows" AS (
  SELECT
    "e"."device_id",
    "e"."__ts",
    "e"."__created",
    "e"."__a0",
    "e"."__a1",
    CASE
      WHEN "e"."__avail" < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR "e"."__avail" >= CAST(:watermark AS TIMESTAMP)
      )
      THEN 1
      ELSE 0
    END AS "__new",
    "f"."__dirty"
  FROM "device_owner__events" AS "e"
  INNER JOIN "device_owner__changed" AS "f"
    ON "e"."device_id" = "f"."device_id"
  WHERE
    "e"."__avail" < CAST(:as_of AS TIMESTAMP)
    AND (
      "e"."__avail" < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR "e"."__avail" >= CAST(:watermark AS TIMESTAMP)
      )
      OR "f"."__dirty" = 1
    )
), "device_owner__parts" AS (
  SELECT
    "s"."device_id",
    "s"."__lt"
  FROM "__fsdsl_state_device_owner" AS "s"
  INNER JOIN "device_owner__changed" AS "f"
    ON "s"."device_id" = "f"."device_id"
  UNION ALL
  SELECT
    "device_id",
    "__ts" AS "__lt"
  FROM "device_owner__rows"
), "device_owner__merged" AS (
  SELECT
    "device_id",
    MAX("__lt") AS "__lt",
    CASE
      WHEN MAX("__lt") >= CAST(:as_of AS TIMESTAMP) - INTERVAL '365' DAY
      THEN 1
      ELSE 0
    END AS "__ttl"
  FROM "device_owner__parts"
  GROUP BY
    "device_id"
), "device_owner__ranked0" AS (
  SELECT
    "device_id",
    "__v",
    "__ts",
    "__created",
    ROW_NUMBER() OVER (PARTITION BY "device_id" ORDER BY "__ts" DESC, "__created" DESC, "__v" DESC) AS "__n"
  FROM (
    SELECT
      "s"."device_id",
      "s"."__p0_1_v" AS "__v",
      "s"."__p0_1_t" AS "__ts",
      "s"."__p0_1_c" AS "__created"
    FROM "__fsdsl_state_device_owner" AS "s"
    INNER JOIN "device_owner__changed" AS "f"
      ON "s"."device_id" = "f"."device_id"
    WHERE
      NOT "s"."__p0_1_v" IS NULL AND NOT "f"."__dirty" = 1
    UNION ALL
    SELECT
      "device_id",
      "__a0" AS "__v",
      "__ts",
      "__created"
    FROM "device_owner__rows"
    WHERE
      NOT "__a0" IS NULL AND (
        "__new" = 1 OR "__dirty" = 1
      )
  ) AS "c"
), "device_owner__top0" AS (
  SELECT
    "device_id",
    MAX(CASE WHEN "__n" = 1 THEN "__v" END) AS "__p0_1_v",
    MAX(CASE WHEN "__n" = 1 THEN "__ts" END) AS "__p0_1_t",
    MAX(CASE WHEN "__n" = 1 THEN "__created" END) AS "__p0_1_c"
  FROM "device_owner__ranked0"
  WHERE
    "__n" <= 1
  GROUP BY
    "device_id"
), "device_owner__ranked1" AS (
  SELECT
    "device_id",
    "__v",
    "__ts",
    "__created",
    ROW_NUMBER() OVER (PARTITION BY "device_id" ORDER BY "__ts" DESC, "__created" DESC, "__v" DESC) AS "__n"
  FROM (
    SELECT
      "s"."device_id",
      "s"."__p1_1_v" AS "__v",
      "s"."__p1_1_t" AS "__ts",
      "s"."__p1_1_c" AS "__created"
    FROM "__fsdsl_state_device_owner" AS "s"
    INNER JOIN "device_owner__changed" AS "f"
      ON "s"."device_id" = "f"."device_id"
    WHERE
      NOT "s"."__p1_1_v" IS NULL AND NOT "f"."__dirty" = 1
    UNION ALL
    SELECT
      "device_id",
      "__a1" AS "__v",
      "__ts",
      "__created"
    FROM "device_owner__rows"
    WHERE
      NOT "__a1" IS NULL AND (
        "__new" = 1 OR "__dirty" = 1
      )
  ) AS "c"
), "device_owner__top1" AS (
  SELECT
    "device_id",
    MAX(CASE WHEN "__n" = 1 THEN "__v" END) AS "__p1_1_v",
    MAX(CASE WHEN "__n" = 1 THEN "__ts" END) AS "__p1_1_t",
    MAX(CASE WHEN "__n" = 1 THEN "__created" END) AS "__p1_1_c"
  FROM "device_owner__ranked1"
  WHERE
    "__n" <= 1
  GROUP BY
    "device_id"
)
SELECT
  "f"."device_id",
  CAST(:as_of AS TIMESTAMP) AS "as_of",
  CASE WHEN COALESCE("r0"."__ttl", 0) > 0 THEN CAST("r1"."__p0_1_v" AS BIGINT) END AS "unlinked",
  CASE
    WHEN COALESCE("r0"."__ttl", 0) > 0
    THEN CAST(CASE WHEN "r1"."__p0_1_v" = 0 THEN "r2"."__p1_1_v" END AS VARCHAR)
  END AS "user_id",
  "r1"."__p0_1_v" AS "__p0_1_v",
  "r1"."__p0_1_t" AS "__p0_1_t",
  "r1"."__p0_1_c" AS "__p0_1_c",
  "r2"."__p1_1_v" AS "__p1_1_v",
  "r2"."__p1_1_t" AS "__p1_1_t",
  "r2"."__p1_1_c" AS "__p1_1_c",
  "r0"."__lt" AS "__lt"
FROM "device_owner__changed" AS "f"
LEFT JOIN "device_owner__merged" AS "r0"
  ON "f"."device_id" = "r0"."device_id"
LEFT JOIN "device_owner__top0" AS "r1"
  ON "f"."device_id" = "r1"."device_id"
LEFT JOIN "device_owner__top1" AS "r2"
  ON "f"."device_id" = "r2"."device_id"
