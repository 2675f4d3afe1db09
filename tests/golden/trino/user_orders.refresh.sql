WITH "user_orders__events" AS (
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
    (
      NOT "src"."user_id" IS NULL
      AND NOT "src"."event_timestamp" IS NULL
      AND NOT "src"."created_at" IS NULL
      AND (
        "src"."status" = 'completed'
      )
    )
    AND (
      CAST(:watermark AS TIMESTAMP) IS NULL
      OR "src"."event_timestamp" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '90' DAY
      OR "src"."created_at" >= CAST(:watermark AS TIMESTAMP)
    )
), "user_orders__delta" AS (
  SELECT
    "user_id",
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
  FROM "user_orders__events"
  WHERE
    (
      "__avail" < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR "__avail" >= CAST(:watermark AS TIMESTAMP)
      )
      OR "__avail" < CAST(:watermark AS TIMESTAMP)
      AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '7' DAY
      AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      OR "__avail" < CAST(:watermark AS TIMESTAMP)
      AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '30' DAY
      AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      OR "__avail" < CAST(:watermark AS TIMESTAMP)
      AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '90' DAY
      AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '90' DAY
      OR "__avail" < CAST(:watermark AS TIMESTAMP)
      AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '60' DAY
      AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '60' DAY
    )
  UNION ALL
  SELECT
    "user_id",
    CAST(NULL AS TIMESTAMP) AS "__ts",
    0 AS "__new",
    1 AS "__dirty"
  FROM "__fsdsl_dirty_user_orders"
), "user_orders__changed" AS (
  SELECT
    "user_id",
    MAX(
      CASE
        WHEN "__new" = 0
        AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
        AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '7' DAY
        THEN 1
        ELSE 0
      END
    ) AS "__l0",
    MAX(
      CASE
        WHEN "__new" = 0
        AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
        AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '30' DAY
        THEN 1
        ELSE 0
      END
    ) AS "__l1",
    MAX(
      CASE
        WHEN "__new" = 0
        AND "__ts" < CAST(:as_of AS TIMESTAMP) - INTERVAL '90' DAY
        AND "__ts" >= CAST(:watermark AS TIMESTAMP) - INTERVAL '90' DAY
        THEN 1
        ELSE 0
      END
    ) AS "__l2",
    MAX("__dirty") AS "__dirty"
  FROM "user_orders__delta"
  GROUP BY
    "user_id"
), "user_orders__rows" AS (
  SELECT
    "e"."user_id",
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
    "f"."__l0",
    "f"."__l1",
    "f"."__l2",
    "f"."__dirty"
  FROM "user_orders__events" AS "e"
  INNER JOIN "user_orders__changed" AS "f"
    ON "e"."user_id" = "f"."user_id"
  WHERE
    "e"."__avail" < CAST(:as_of AS TIMESTAMP)
    AND (
      "e"."__avail" < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR "e"."__avail" >= CAST(:watermark AS TIMESTAMP)
      )
      OR "f"."__dirty" = 1
      OR "f"."__l0" = 1
      AND "e"."__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      OR "f"."__l1" = 1
      AND "e"."__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      OR "f"."__l2" = 1
      AND "e"."__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '90' DAY
    )
), "user_orders__parts" AS (
  SELECT
    "s"."user_id",
    CAST(CASE WHEN NOT (
      "f"."__l0" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__c0" END AS BIGINT) AS "__c0",
    CAST(CASE WHEN NOT (
      "f"."__l1" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__c1" END AS BIGINT) AS "__c1",
    CAST(CASE WHEN NOT (
      "f"."__l1" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__s2" END AS DOUBLE) AS "__s2",
    CAST(CASE WHEN NOT (
      "f"."__l1" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__s3" END AS DOUBLE) AS "__s3",
    CAST(CASE WHEN NOT (
      "f"."__l1" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__c3" END AS BIGINT) AS "__c3",
    CAST(CASE WHEN NOT (
      "f"."__l0" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__m4" END AS DOUBLE) AS "__m4",
    CAST(CASE WHEN NOT (
      "f"."__l2" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__m5" END AS DOUBLE) AS "__m5",
    CAST(CASE WHEN NOT (
      "f"."__l1" = 1 OR "f"."__dirty" = 1
    ) THEN "s"."__c6" END AS BIGINT) AS "__c6",
    "s"."__lt"
  FROM "__fsdsl_state_user_orders" AS "s"
  INNER JOIN "user_orders__changed" AS "f"
    ON "s"."user_id" = "f"."user_id"
  UNION ALL
  SELECT
    "user_id",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        "__new" = 1 OR (
          "__l0" = 1 OR "__dirty" = 1
        )
      )
      THEN 1
      ELSE 0
    END AS BIGINT) AS "__c0",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      AND (
        "__new" = 1 OR (
          "__l1" = 1 OR "__dirty" = 1
        )
      )
      THEN 1
      ELSE 0
    END AS BIGINT) AS "__c1",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      AND (
        "__new" = 1 OR (
          "__l1" = 1 OR "__dirty" = 1
        )
      )
      THEN "__a0"
    END AS DOUBLE) AS "__s2",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      AND (
        "__new" = 1 OR (
          "__l1" = 1 OR "__dirty" = 1
        )
      )
      THEN CAST("__a0" AS DOUBLE)
    END AS DOUBLE) AS "__s3",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      AND (
        "__new" = 1 OR (
          "__l1" = 1 OR "__dirty" = 1
        )
      )
      AND NOT "__a0" IS NULL
      THEN 1
      ELSE 0
    END AS BIGINT) AS "__c3",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        "__new" = 1 OR (
          "__l0" = 1 OR "__dirty" = 1
        )
      )
      THEN "__a0"
    END AS DOUBLE) AS "__m4",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '90' DAY
      AND (
        "__new" = 1 OR (
          "__l2" = 1 OR "__dirty" = 1
        )
      )
      THEN "__a0"
    END AS DOUBLE) AS "__m5",
    CAST(CASE
      WHEN "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      AND (
        "__new" = 1 OR (
          "__l1" = 1 OR "__dirty" = 1
        )
      )
      AND NOT "__a0" IS NULL
      THEN 1
      ELSE 0
    END AS BIGINT) AS "__c6",
    "__ts" AS "__lt"
  FROM "user_orders__rows"
), "user_orders__merged" AS (
  SELECT
    "user_id",
    CAST(SUM("__c0") AS BIGINT) AS "__c0",
    SUM("__c0") AS "__r0",
    CAST(SUM("__c1") AS BIGINT) AS "__c1",
    SUM("__c1") AS "__r1",
    CAST(SUM("__s2") AS DOUBLE) AS "__s2",
    SUM("__s2") AS "__r2",
    CAST(SUM("__s3") AS DOUBLE) AS "__s3",
    CAST(SUM("__c3") AS BIGINT) AS "__c3",
    CASE WHEN SUM("__c3") > 0 THEN CAST(SUM("__s3") AS DOUBLE) / SUM("__c3") END AS "__r3",
    MIN("__m4") AS "__m4",
    MIN("__m4") AS "__r4",
    MAX("__m5") AS "__m5",
    MAX("__m5") AS "__r5",
    CAST(SUM("__c6") AS BIGINT) AS "__c6",
    SUM("__c6") AS "__r6",
    MAX("__lt") AS "__lt",
    CASE
      WHEN MAX("__lt") >= CAST(:as_of AS TIMESTAMP) - INTERVAL '60' DAY
      THEN 1
      ELSE 0
    END AS "__ttl"
  FROM "user_orders__parts"
  GROUP BY
    "user_id"
), "user_orders__ranked7" AS (
  SELECT
    "user_id",
    "__v",
    "__ts",
    "__created",
    ROW_NUMBER() OVER (PARTITION BY "user_id" ORDER BY "__ts" DESC, "__created" DESC, "__v" DESC) AS "__n"
  FROM (
    SELECT
      "s"."user_id",
      "s"."__p7_1_v" AS "__v",
      "s"."__p7_1_t" AS "__ts",
      "s"."__p7_1_c" AS "__created"
    FROM "__fsdsl_state_user_orders" AS "s"
    INNER JOIN "user_orders__changed" AS "f"
      ON "s"."user_id" = "f"."user_id"
    WHERE
      NOT "s"."__p7_1_v" IS NULL AND NOT "f"."__dirty" = 1
    UNION ALL
    SELECT
      "user_id",
      "__a0" AS "__v",
      "__ts",
      "__created"
    FROM "user_orders__rows"
    WHERE
      NOT "__a0" IS NULL AND (
        "__new" = 1 OR "__dirty" = 1
      )
  ) AS "c"
), "user_orders__top7" AS (
  SELECT
    "user_id",
    MAX(CASE WHEN "__n" = 1 THEN "__v" END) AS "__p7_1_v",
    MAX(CASE WHEN "__n" = 1 THEN "__ts" END) AS "__p7_1_t",
    MAX(CASE WHEN "__n" = 1 THEN "__created" END) AS "__p7_1_c"
  FROM "user_orders__ranked7"
  WHERE
    "__n" <= 1
  GROUP BY
    "user_id"
), "user_orders__ranked8" AS (
  SELECT
    "user_id",
    "__v",
    "__ts",
    "__created",
    ROW_NUMBER() OVER (PARTITION BY "user_id" ORDER BY "__ts" ASC, "__created" ASC, "__v" ASC) AS "__n"
  FROM (
    SELECT
      "s"."user_id",
      "s"."__p8_1_v" AS "__v",
      "s"."__p8_1_t" AS "__ts",
      "s"."__p8_1_c" AS "__created"
    FROM "__fsdsl_state_user_orders" AS "s"
    INNER JOIN "user_orders__changed" AS "f"
      ON "s"."user_id" = "f"."user_id"
    WHERE
      NOT "s"."__p8_1_v" IS NULL
      AND "s"."__p8_1_t" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      AND NOT (
        "f"."__l1" = 1 OR "f"."__dirty" = 1
      )
    UNION ALL
    SELECT
      "user_id",
      "__a0" AS "__v",
      "__ts",
      "__created"
    FROM "user_orders__rows"
    WHERE
      NOT "__a0" IS NULL
      AND "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      AND (
        "__new" = 1 OR (
          "__l1" = 1 OR "__dirty" = 1
        )
      )
  ) AS "c"
), "user_orders__top8" AS (
  SELECT
    "user_id",
    MAX(CASE WHEN "__n" = 1 THEN "__v" END) AS "__p8_1_v",
    MAX(CASE WHEN "__n" = 1 THEN "__ts" END) AS "__p8_1_t",
    MAX(CASE WHEN "__n" = 1 THEN "__created" END) AS "__p8_1_c"
  FROM "user_orders__ranked8"
  WHERE
    "__n" <= 1
  GROUP BY
    "user_id"
), "user_orders__ranked9" AS (
  SELECT
    "user_id",
    "__v",
    "__ts",
    "__created",
    ROW_NUMBER() OVER (PARTITION BY "user_id" ORDER BY "__ts" DESC, "__created" DESC, "__v" DESC) AS "__n"
  FROM (
    SELECT
      "s"."user_id",
      "s"."__p9_1_v" AS "__v",
      "s"."__p9_1_t" AS "__ts",
      "s"."__p9_1_c" AS "__created"
    FROM "__fsdsl_state_user_orders" AS "s"
    INNER JOIN "user_orders__changed" AS "f"
      ON "s"."user_id" = "f"."user_id"
    WHERE
      NOT "s"."__p9_1_v" IS NULL AND NOT "f"."__dirty" = 1
    UNION ALL
    SELECT
      "s"."user_id",
      "s"."__p9_2_v" AS "__v",
      "s"."__p9_2_t" AS "__ts",
      "s"."__p9_2_c" AS "__created"
    FROM "__fsdsl_state_user_orders" AS "s"
    INNER JOIN "user_orders__changed" AS "f"
      ON "s"."user_id" = "f"."user_id"
    WHERE
      NOT "s"."__p9_2_v" IS NULL AND NOT "f"."__dirty" = 1
    UNION ALL
    SELECT
      "s"."user_id",
      "s"."__p9_3_v" AS "__v",
      "s"."__p9_3_t" AS "__ts",
      "s"."__p9_3_c" AS "__created"
    FROM "__fsdsl_state_user_orders" AS "s"
    INNER JOIN "user_orders__changed" AS "f"
      ON "s"."user_id" = "f"."user_id"
    WHERE
      NOT "s"."__p9_3_v" IS NULL AND NOT "f"."__dirty" = 1
    UNION ALL
    SELECT
      "user_id",
      "__a0" AS "__v",
      "__ts",
      "__created"
    FROM "user_orders__rows"
    WHERE
      NOT "__a0" IS NULL AND (
        "__new" = 1 OR "__dirty" = 1
      )
  ) AS "c"
), "user_orders__top9" AS (
  SELECT
    "user_id",
    MAX(CASE WHEN "__n" = 1 THEN "__v" END) AS "__p9_1_v",
    MAX(CASE WHEN "__n" = 1 THEN "__ts" END) AS "__p9_1_t",
    MAX(CASE WHEN "__n" = 1 THEN "__created" END) AS "__p9_1_c",
    MAX(CASE WHEN "__n" = 2 THEN "__v" END) AS "__p9_2_v",
    MAX(CASE WHEN "__n" = 2 THEN "__ts" END) AS "__p9_2_t",
    MAX(CASE WHEN "__n" = 2 THEN "__created" END) AS "__p9_2_c",
    MAX(CASE WHEN "__n" = 3 THEN "__v" END) AS "__p9_3_v",
    MAX(CASE WHEN "__n" = 3 THEN "__ts" END) AS "__p9_3_t",
    MAX(CASE WHEN "__n" = 3 THEN "__created" END) AS "__p9_3_c",
    ARRAY_AGG("__v" ORDER BY "__n") FILTER(WHERE
      TRUE) AS "__r9"
  FROM "user_orders__ranked9"
  WHERE
    "__n" <= 3
  GROUP BY
    "user_id"
), "user_orders__seen10" AS (
  SELECT
    "user_id",
    "__v",
    MAX("__t") AS "__t"
  FROM (
    SELECT
      "s"."user_id",
      "s"."__v",
      "s"."__t"
    FROM "__fsdsl_state_user_orders__d10" AS "s"
    INNER JOIN "user_orders__changed" AS "f"
      ON "s"."user_id" = "f"."user_id"
    WHERE
      "s"."__t" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
    UNION ALL
    SELECT
      "user_id",
      "__a1" AS "__v",
      "__ts" AS "__t"
    FROM "user_orders__rows"
    WHERE
      (
        "__new" = 1 OR "__dirty" = 1
      )
      AND NOT "__a1" IS NULL
      AND "__ts" >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
  ) AS "c"
  GROUP BY
    "user_id",
    "__v"
), "user_orders__distinct10" AS (
  SELECT
    "user_id",
    COUNT(*) AS "__r10",
    ARRAY_AGG("__v" ORDER BY "__v") FILTER(WHERE
      TRUE) AS "__d10_v",
    ARRAY_AGG("__t" ORDER BY "__v") FILTER(WHERE
      TRUE) AS "__d10_t"
  FROM "user_orders__seen10"
  GROUP BY
    "user_id"
)
SELECT
  "f"."user_id",
  CAST(:as_of AS TIMESTAMP) AS "as_of",
  CASE
    WHEN COALESCE("r0"."__ttl", 0) > 0
    THEN CAST(COALESCE("r0"."__r0", 0) AS BIGINT)
  END AS "orders_7d",
  CASE
    WHEN COALESCE("r0"."__ttl", 0) > 0
    THEN CAST(COALESCE("r0"."__r1", 0) AS BIGINT)
  END AS "orders_30d",
  CASE WHEN COALESCE("r0"."__ttl", 0) > 0 THEN CAST("r0"."__r2" AS DOUBLE) END AS "spend_30d",
  CASE WHEN COALESCE("r0"."__ttl", 0) > 0 THEN CAST("r0"."__r3" AS DOUBLE) END AS "avg_amount_30d",
  CASE WHEN COALESCE("r0"."__ttl", 0) > 0 THEN CAST("r0"."__r4" AS DOUBLE) END AS "min_amount_7d",
  CASE WHEN COALESCE("r0"."__ttl", 0) > 0 THEN CAST("r0"."__r5" AS DOUBLE) END AS "max_amount_90d",
  CASE
    WHEN COALESCE("r0"."__ttl", 0) > 0
    THEN CAST(COALESCE("r0"."__r6", 0) AS BIGINT)
  END AS "priced_30d",
  CASE WHEN COALESCE("r0"."__ttl", 0) > 0 THEN CAST("r1"."__p7_1_v" AS DOUBLE) END AS "last_amount",
  CASE WHEN COALESCE("r0"."__ttl", 0) > 0 THEN CAST("r2"."__p8_1_v" AS DOUBLE) END AS "first_amount_30d",
  CASE
    WHEN COALESCE("r0"."__ttl", 0) > 0
    THEN COALESCE("r3"."__r9", CAST(ARRAY[] AS ARRAY(DOUBLE)))
  END AS "recent_amounts",
  CASE
    WHEN COALESCE("r0"."__ttl", 0) > 0
    THEN CAST(COALESCE("r4"."__r10", 0) AS BIGINT)
  END AS "active_days_30d",
  CASE
    WHEN COALESCE("r0"."__ttl", 0) > 0
    THEN CAST(CAST("r0"."__r2" AS DOUBLE) / NULLIF(NULLIF(COALESCE("r0"."__r1", 0), 0), 0) AS DOUBLE)
  END AS "spend_per_order_30d",
  "r0"."__c0" AS "__c0",
  "r0"."__c1" AS "__c1",
  "r0"."__s2" AS "__s2",
  "r0"."__s3" AS "__s3",
  "r0"."__c3" AS "__c3",
  "r0"."__m4" AS "__m4",
  "r0"."__m5" AS "__m5",
  "r0"."__c6" AS "__c6",
  "r1"."__p7_1_v" AS "__p7_1_v",
  "r1"."__p7_1_t" AS "__p7_1_t",
  "r1"."__p7_1_c" AS "__p7_1_c",
  "r2"."__p8_1_v" AS "__p8_1_v",
  "r2"."__p8_1_t" AS "__p8_1_t",
  "r2"."__p8_1_c" AS "__p8_1_c",
  "r3"."__p9_1_v" AS "__p9_1_v",
  "r3"."__p9_1_t" AS "__p9_1_t",
  "r3"."__p9_1_c" AS "__p9_1_c",
  "r3"."__p9_2_v" AS "__p9_2_v",
  "r3"."__p9_2_t" AS "__p9_2_t",
  "r3"."__p9_2_c" AS "__p9_2_c",
  "r3"."__p9_3_v" AS "__p9_3_v",
  "r3"."__p9_3_t" AS "__p9_3_t",
  "r3"."__p9_3_c" AS "__p9_3_c",
  "r4"."__d10_v" AS "__d10_v",
  "r4"."__d10_t" AS "__d10_t",
  "r0"."__lt" AS "__lt"
FROM "user_orders__changed" AS "f"
LEFT JOIN "user_orders__merged" AS "r0"
  ON "f"."user_id" = "r0"."user_id"
LEFT JOIN "user_orders__top7" AS "r1"
  ON "f"."user_id" = "r1"."user_id"
LEFT JOIN "user_orders__top8" AS "r2"
  ON "f"."user_id" = "r2"."user_id"
LEFT JOIN "user_orders__top9" AS "r3"
  ON "f"."user_id" = "r3"."user_id"
LEFT JOIN "user_orders__distinct10" AS "r4"
  ON "f"."user_id" = "r4"."user_id"
