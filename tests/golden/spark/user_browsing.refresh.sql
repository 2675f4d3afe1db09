WITH `user_browsing__events` AS (
  SELECT
    `src`.`visitor_id` AS `user_id`,
    `src`.`viewed_at` AS `__ts`,
    `src`.`viewed_at` AS `__avail`,
    CASE WHEN `src`.`is_mobile` THEN 1.0 ELSE 0.0 END AS `__a0`,
    `src`.`dwell_seconds` AS `__a1`,
    LOWER(`src`.`category`) AS `__a2`,
    `src`.`category` AS `__a3`,
    `src`.`viewed_at` AS `__a4`,
    `src`.`product_id` AS `__a5`
  FROM `web`.`page_views` AS `src`
  WHERE
    (
      NOT `src`.`visitor_id` IS NULL AND NOT `src`.`viewed_at` IS NULL
    )
    AND (
      CAST(:watermark AS TIMESTAMP) IS NULL
      OR `src`.`viewed_at` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '30' DAY
    )
), `user_browsing__delta` AS (
  SELECT
    `user_id`,
    `__ts`,
    CASE
      WHEN `__avail` < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR `__avail` >= CAST(:watermark AS TIMESTAMP)
      )
      THEN 1
      ELSE 0
    END AS `__new`,
    0 AS `__dirty`
  FROM `user_browsing__events`
  WHERE
    (
      `__avail` < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR `__avail` >= CAST(:watermark AS TIMESTAMP)
      )
      OR `__avail` < CAST(:watermark AS TIMESTAMP)
      AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '1' HOUR
      AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '1' HOUR
      OR `__avail` < CAST(:watermark AS TIMESTAMP)
      AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '24' HOUR
      AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '24' HOUR
      OR `__avail` < CAST(:watermark AS TIMESTAMP)
      AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '7' DAY
      AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      OR `__avail` < CAST(:watermark AS TIMESTAMP)
      AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '14' DAY
      AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '14' DAY
      OR `__avail` < CAST(:watermark AS TIMESTAMP)
      AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '30' DAY
      AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
    )
  UNION ALL
  SELECT
    `user_id`,
    CAST(NULL AS TIMESTAMP) AS `__ts`,
    0 AS `__new`,
    1 AS `__dirty`
  FROM `__fsdsl_dirty_user_browsing`
), `user_browsing__changed` AS (
  SELECT
    `user_id`,
    MAX(
      CASE
        WHEN `__new` = 0
        AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '1' HOUR
        AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '1' HOUR
        THEN 1
        ELSE 0
      END
    ) AS `__l0`,
    MAX(
      CASE
        WHEN `__new` = 0
        AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '24' HOUR
        AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '24' HOUR
        THEN 1
        ELSE 0
      END
    ) AS `__l1`,
    MAX(
      CASE
        WHEN `__new` = 0
        AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
        AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '7' DAY
        THEN 1
        ELSE 0
      END
    ) AS `__l2`,
    MAX(
      CASE
        WHEN `__new` = 0
        AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '14' DAY
        AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '14' DAY
        THEN 1
        ELSE 0
      END
    ) AS `__l3`,
    MAX(`__dirty`) AS `__dirty`
  FROM `user_browsing__delta`
  GROUP BY
    `user_id`
), `user_browsing__rows` AS (
  SELECT
    `e`.`user_id`,
    `e`.`__ts`,
    `e`.`__a0`,
    `e`.`__a1`,
    `e`.`__a2`,
    `e`.`__a3`,
    `e`.`__a4`,
    `e`.`__a5`,
    CASE
      WHEN `e`.`__avail` < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR `e`.`__avail` >= CAST(:watermark AS TIMESTAMP)
      )
      THEN 1
      ELSE 0
    END AS `__new`,
    `f`.`__l0`,
    `f`.`__l1`,
    `f`.`__l2`,
    `f`.`__l3`,
    `f`.`__dirty`
  FROM `user_browsing__events` AS `e`
  INNER JOIN `user_browsing__changed` AS `f`
    ON `e`.`user_id` = `f`.`user_id`
  WHERE
    `e`.`__avail` < CAST(:as_of AS TIMESTAMP)
    AND (
      `e`.`__avail` < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR `e`.`__avail` >= CAST(:watermark AS TIMESTAMP)
      )
      OR `f`.`__dirty` = 1
      OR `f`.`__l0` = 1
      AND `e`.`__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '1' HOUR
      OR `f`.`__l1` = 1
      AND `e`.`__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '24' HOUR
      OR `f`.`__l2` = 1
      AND `e`.`__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      OR `f`.`__l3` = 1
      AND `e`.`__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '14' DAY
    )
), `user_browsing__parts` AS (
  SELECT
    `s`.`user_id`,
    CAST(CASE WHEN NOT (
      `f`.`__l0` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__c0` END AS BIGINT) AS `__c0`,
    CAST(CASE WHEN NOT (
      `f`.`__l1` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__c1` END AS BIGINT) AS `__c1`,
    CAST(CASE WHEN NOT (
      `f`.`__l2` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__c2` END AS BIGINT) AS `__c2`,
    CAST(CASE WHEN NOT (
      `f`.`__l2` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__s3` END AS DOUBLE) AS `__s3`,
    CAST(CASE WHEN NOT (
      `f`.`__l2` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__c3` END AS BIGINT) AS `__c3`,
    CAST(CASE WHEN NOT (
      `f`.`__l2` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__s4` END AS DOUBLE) AS `__s4`,
    CAST(CASE WHEN NOT `f`.`__dirty` = 1 THEN `s`.`__m7` END AS TIMESTAMP) AS `__m7`,
    CAST(CASE WHEN NOT (
      `f`.`__l1` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__c10` END AS BIGINT) AS `__c10`,
    `s`.`__lt`
  FROM `__fsdsl_state_user_browsing` AS `s`
  INNER JOIN `user_browsing__changed` AS `f`
    ON `s`.`user_id` = `f`.`user_id`
  UNION ALL
  SELECT
    `user_id`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '1' HOUR
      AND (
        `__new` = 1 OR (
          `__l0` = 1 OR `__dirty` = 1
        )
      )
      THEN 1
      ELSE 0
    END AS BIGINT) AS `__c0`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '24' HOUR
      AND (
        `__new` = 1 OR (
          `__l1` = 1 OR `__dirty` = 1
        )
      )
      THEN 1
      ELSE 0
    END AS BIGINT) AS `__c1`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        `__new` = 1 OR (
          `__l2` = 1 OR `__dirty` = 1
        )
      )
      THEN 1
      ELSE 0
    END AS BIGINT) AS `__c2`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        `__new` = 1 OR (
          `__l2` = 1 OR `__dirty` = 1
        )
      )
      THEN CAST(`__a0` AS DOUBLE)
    END AS DOUBLE) AS `__s3`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        `__new` = 1 OR (
          `__l2` = 1 OR `__dirty` = 1
        )
      )
      AND NOT `__a0` IS NULL
      THEN 1
      ELSE 0
    END AS BIGINT) AS `__c3`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        `__new` = 1 OR (
          `__l2` = 1 OR `__dirty` = 1
        )
      )
      THEN `__a1`
    END AS DOUBLE) AS `__s4`,
    CAST(CASE WHEN (
      `__new` = 1 OR `__dirty` = 1
    ) THEN `__a4` END AS TIMESTAMP) AS `__m7`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '24' HOUR
      AND (
        `__new` = 1 OR (
          `__l1` = 1 OR `__dirty` = 1
        )
      )
      AND NOT `__a1` IS NULL
      THEN 1
      ELSE 0
    END AS BIGINT) AS `__c10`,
    `__ts` AS `__lt`
  FROM `user_browsing__rows`
), `user_browsing__merged` AS (
  SELECT
    `user_id`,
    CAST(SUM(`__c0`) AS BIGINT) AS `__c0`,
    SUM(`__c0`) AS `__r0`,
    CAST(SUM(`__c1`) AS BIGINT) AS `__c1`,
    SUM(`__c1`) AS `__r1`,
    CAST(SUM(`__c2`) AS BIGINT) AS `__c2`,
    SUM(`__c2`) AS `__r2`,
    CAST(SUM(`__s3`) AS DOUBLE) AS `__s3`,
    CAST(SUM(`__c3`) AS BIGINT) AS `__c3`,
    CASE WHEN SUM(`__c3`) > 0 THEN CAST(SUM(`__s3`) AS DOUBLE) / SUM(`__c3`) END AS `__r3`,
    CAST(SUM(`__s4`) AS DOUBLE) AS `__s4`,
    SUM(`__s4`) AS `__r4`,
    MAX(`__m7`) AS `__m7`,
    MAX(`__m7`) AS `__r7`,
    CAST(SUM(`__c10`) AS BIGINT) AS `__c10`,
    SUM(`__c10`) AS `__r10`,
    MAX(`__lt`) AS `__lt`,
    CASE
      WHEN MAX(`__lt`) >= CAST(:as_of AS TIMESTAMP) - INTERVAL '30' DAY
      THEN 1
      ELSE 0
    END AS `__ttl`
  FROM `user_browsing__parts`
  GROUP BY
    `user_id`
), `user_browsing__seen5` AS (
  SELECT
    `user_id`,
    `__v`,
    MAX(`__t`) AS `__t`
  FROM (
    SELECT
      `s`.`user_id`,
      `s`.`__v`,
      `s`.`__t`
    FROM `__fsdsl_state_user_browsing__d5` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      `s`.`__t` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
    UNION ALL
    SELECT
      `user_id`,
      `__a2` AS `__v`,
      `__ts` AS `__t`
    FROM `user_browsing__rows`
    WHERE
      (
        `__new` = 1 OR `__dirty` = 1
      )
      AND NOT `__a2` IS NULL
      AND `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
  ) AS `c`
  GROUP BY
    `user_id`,
    `__v`
), `user_browsing__distinct5` AS (
  SELECT
    `user_id`,
    COUNT(*) AS `__r5`,
    TRANSFORM(
      ARRAY_SORT(COLLECT_LIST(STRUCT(`__v` AS `r`, `__v` AS `v`)) FILTER(WHERE
        TRUE)),
      `s` -> `s`.`v`
    ) AS `__d5_v`,
    TRANSFORM(
      ARRAY_SORT(COLLECT_LIST(STRUCT(`__v` AS `r`, `__t` AS `v`)) FILTER(WHERE
        TRUE)),
      `s` -> `s`.`v`
    ) AS `__d5_t`
  FROM `user_browsing__seen5`
  GROUP BY
    `user_id`
), `user_browsing__ranked6` AS (
  SELECT
    `user_id`,
    `__v`,
    `__ts`,
    ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY `__ts` DESC, `__v` DESC) AS `__n`
  FROM (
    SELECT
      `s`.`user_id`,
      `s`.`__p6_1_v` AS `__v`,
      `s`.`__p6_1_t` AS `__ts`
    FROM `__fsdsl_state_user_browsing` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      NOT `s`.`__p6_1_v` IS NULL AND NOT `f`.`__dirty` = 1
    UNION ALL
    SELECT
      `user_id`,
      `__a3` AS `__v`,
      `__ts`
    FROM `user_browsing__rows`
    WHERE
      NOT `__a3` IS NULL AND (
        `__new` = 1 OR `__dirty` = 1
      )
  ) AS `c`
), `user_browsing__top6` AS (
  SELECT
    `user_id`,
    MAX(CASE WHEN `__n` = 1 THEN `__v` END) AS `__p6_1_v`,
    MAX(CASE WHEN `__n` = 1 THEN `__ts` END) AS `__p6_1_t`
  FROM `user_browsing__ranked6`
  WHERE
    `__n` <= 1
  GROUP BY
    `user_id`
), `user_browsing__ranked8` AS (
  SELECT
    `user_id`,
    `__v`,
    `__ts`,
    ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY `__ts` ASC NULLS LAST, `__v` ASC NULLS LAST) AS `__n`
  FROM (
    SELECT
      `s`.`user_id`,
      `s`.`__p8_1_v` AS `__v`,
      `s`.`__p8_1_t` AS `__ts`
    FROM `__fsdsl_state_user_browsing` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      NOT `s`.`__p8_1_v` IS NULL
      AND `s`.`__p8_1_t` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '14' DAY
      AND NOT (
        `f`.`__l3` = 1 OR `f`.`__dirty` = 1
      )
    UNION ALL
    SELECT
      `user_id`,
      `__a4` AS `__v`,
      `__ts`
    FROM `user_browsing__rows`
    WHERE
      NOT `__a4` IS NULL
      AND `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '14' DAY
      AND (
        `__new` = 1 OR (
          `__l3` = 1 OR `__dirty` = 1
        )
      )
  ) AS `c`
), `user_browsing__top8` AS (
  SELECT
    `user_id`,
    MAX(CASE WHEN `__n` = 1 THEN `__v` END) AS `__p8_1_v`,
    MAX(CASE WHEN `__n` = 1 THEN `__ts` END) AS `__p8_1_t`
  FROM `user_browsing__ranked8`
  WHERE
    `__n` <= 1
  GROUP BY
    `user_id`
), `user_browsing__ranked9` AS (
  SELECT
    `user_id`,
    `__v`,
    `__ts`,
    ROW_NUMBER() OVER (PARTITION BY `user_id` ORDER BY `__ts` DESC, `__v` DESC) AS `__n`
  FROM (
    SELECT
      `s`.`user_id`,
      `s`.`__p9_1_v` AS `__v`,
      `s`.`__p9_1_t` AS `__ts`
    FROM `__fsdsl_state_user_browsing` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      NOT `s`.`__p9_1_v` IS NULL
      AND `s`.`__p9_1_t` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND NOT (
        `f`.`__l2` = 1 OR `f`.`__dirty` = 1
      )
    UNION ALL
    SELECT
      `s`.`user_id`,
      `s`.`__p9_2_v` AS `__v`,
      `s`.`__p9_2_t` AS `__ts`
    FROM `__fsdsl_state_user_browsing` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      NOT `s`.`__p9_2_v` IS NULL
      AND `s`.`__p9_2_t` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND NOT (
        `f`.`__l2` = 1 OR `f`.`__dirty` = 1
      )
    UNION ALL
    SELECT
      `s`.`user_id`,
      `s`.`__p9_3_v` AS `__v`,
      `s`.`__p9_3_t` AS `__ts`
    FROM `__fsdsl_state_user_browsing` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      NOT `s`.`__p9_3_v` IS NULL
      AND `s`.`__p9_3_t` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND NOT (
        `f`.`__l2` = 1 OR `f`.`__dirty` = 1
      )
    UNION ALL
    SELECT
      `s`.`user_id`,
      `s`.`__p9_4_v` AS `__v`,
      `s`.`__p9_4_t` AS `__ts`
    FROM `__fsdsl_state_user_browsing` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      NOT `s`.`__p9_4_v` IS NULL
      AND `s`.`__p9_4_t` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND NOT (
        `f`.`__l2` = 1 OR `f`.`__dirty` = 1
      )
    UNION ALL
    SELECT
      `s`.`user_id`,
      `s`.`__p9_5_v` AS `__v`,
      `s`.`__p9_5_t` AS `__ts`
    FROM `__fsdsl_state_user_browsing` AS `s`
    INNER JOIN `user_browsing__changed` AS `f`
      ON `s`.`user_id` = `f`.`user_id`
    WHERE
      NOT `s`.`__p9_5_v` IS NULL
      AND `s`.`__p9_5_t` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND NOT (
        `f`.`__l2` = 1 OR `f`.`__dirty` = 1
      )
    UNION ALL
    SELECT
      `user_id`,
      `__a5` AS `__v`,
      `__ts`
    FROM `user_browsing__rows`
    WHERE
      NOT `__a5` IS NULL
      AND `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        `__new` = 1 OR (
          `__l2` = 1 OR `__dirty` = 1
        )
      )
  ) AS `c`
), `user_browsing__top9` AS (
  SELECT
    `user_id`,
    MAX(CASE WHEN `__n` = 1 THEN `__v` END) AS `__p9_1_v`,
    MAX(CASE WHEN `__n` = 1 THEN `__ts` END) AS `__p9_1_t`,
    MAX(CASE WHEN `__n` = 2 THEN `__v` END) AS `__p9_2_v`,
    MAX(CASE WHEN `__n` = 2 THEN `__ts` END) AS `__p9_2_t`,
    MAX(CASE WHEN `__n` = 3 THEN `__v` END) AS `__p9_3_v`,
    MAX(CASE WHEN `__n` = 3 THEN `__ts` END) AS `__p9_3_t`,
    MAX(CASE WHEN `__n` = 4 THEN `__v` END) AS `__p9_4_v`,
    MAX(CASE WHEN `__n` = 4 THEN `__ts` END) AS `__p9_4_t`,
    MAX(CASE WHEN `__n` = 5 THEN `__v` END) AS `__p9_5_v`,
    MAX(CASE WHEN `__n` = 5 THEN `__ts` END) AS `__p9_5_t`,
    TRANSFORM(
      ARRAY_SORT(COLLECT_LIST(STRUCT(`__n` AS `r`, `__v` AS `v`)) FILTER(WHERE
        TRUE)),
      `s` -> `s`.`v`
    ) AS `__r9`
  FROM `user_browsing__ranked9`
  WHERE
    `__n` <= 5
  GROUP BY
    `user_id`
)
SELECT
  `f`.`user_id`,
  CAST(:as_of AS TIMESTAMP) AS `as_of`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`r0`.`__r0`, 0) AS BIGINT)
  END AS `views_1h`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`r0`.`__r1`, 0) AS BIGINT)
  END AS `views_24h`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`r0`.`__r2`, 0) AS BIGINT)
  END AS `views_7d`,
  CASE WHEN COALESCE(`r0`.`__ttl`, 0) > 0 THEN CAST(`r0`.`__r3` AS DOUBLE) END AS `mobile_share_7d`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(`r0`.`__r4` / NULLIF(NULLIF(COALESCE(`r0`.`__r2`, 0), 0), 0) AS DOUBLE)
  END AS `dwell_per_view_7d`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`r1`.`__r5`, 0) AS BIGINT)
  END AS `categories_7d`,
  CASE WHEN COALESCE(`r0`.`__ttl`, 0) > 0 THEN CAST(`r2`.`__p6_1_v` AS STRING) END AS `last_category`,
  CASE WHEN COALESCE(`r0`.`__ttl`, 0) > 0 THEN CAST(`r0`.`__r7` AS TIMESTAMP) END AS `last_view_at`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(EXTRACT(HOUR FROM `r3`.`__p8_1_v`) AS BIGINT)
  END AS `first_view_hour_2w`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN COALESCE(`r4`.`__r9`, CAST(ARRAY() AS ARRAY<STRING>))
  END AS `recent_products`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`r0`.`__r10`, 0) AS BIGINT)
  END AS `long_views_24h`,
  `r0`.`__c0` AS `__c0`,
  `r0`.`__c1` AS `__c1`,
  `r0`.`__c2` AS `__c2`,
  `r0`.`__s3` AS `__s3`,
  `r0`.`__c3` AS `__c3`,
  `r0`.`__s4` AS `__s4`,
  `r1`.`__d5_v` AS `__d5_v`,
  `r1`.`__d5_t` AS `__d5_t`,
  `r2`.`__p6_1_v` AS `__p6_1_v`,
  `r2`.`__p6_1_t` AS `__p6_1_t`,
  `r0`.`__m7` AS `__m7`,
  `r3`.`__p8_1_v` AS `__p8_1_v`,
  `r3`.`__p8_1_t` AS `__p8_1_t`,
  `r4`.`__p9_1_v` AS `__p9_1_v`,
  `r4`.`__p9_1_t` AS `__p9_1_t`,
  `r4`.`__p9_2_v` AS `__p9_2_v`,
  `r4`.`__p9_2_t` AS `__p9_2_t`,
  `r4`.`__p9_3_v` AS `__p9_3_v`,
  `r4`.`__p9_3_t` AS `__p9_3_t`,
  `r4`.`__p9_4_v` AS `__p9_4_v`,
  `r4`.`__p9_4_t` AS `__p9_4_t`,
  `r4`.`__p9_5_v` AS `__p9_5_v`,
  `r4`.`__p9_5_t` AS `__p9_5_t`,
  `r0`.`__c10` AS `__c10`,
  `r0`.`__lt` AS `__lt`
FROM `user_browsing__changed` AS `f`
LEFT JOIN `user_browsing__merged` AS `r0`
  ON `f`.`user_id` = `r0`.`user_id`
LEFT JOIN `user_browsing__distinct5` AS `r1`
  ON `f`.`user_id` = `r1`.`user_id`
LEFT JOIN `user_browsing__top6` AS `r2`
  ON `f`.`user_id` = `r2`.`user_id`
LEFT JOIN `user_browsing__top8` AS `r3`
  ON `f`.`user_id` = `r3`.`user_id`
LEFT JOIN `user_browsing__top9` AS `r4`
  ON `f`.`user_id` = `r4`.`user_id`
