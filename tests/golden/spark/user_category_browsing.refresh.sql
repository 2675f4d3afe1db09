WITH `user_category_browsing__events` AS (
  SELECT
    `src`.`visitor_id` AS `user_id`,
    `src`.`category` AS `category`,
    `src`.`viewed_at` AS `__ts`,
    `src`.`viewed_at` AS `__avail`,
    `src`.`dwell_seconds` AS `__a0`
  FROM `web`.`page_views` AS `src`
  WHERE
    (
      NOT `src`.`visitor_id` IS NULL
      AND NOT `src`.`category` IS NULL
      AND NOT `src`.`viewed_at` IS NULL
      AND (
        (
          `src`.`dwell_seconds` >= 2
        ) AND (
          NOT `src`.`category` IS NULL
        )
      )
    )
    AND (
      CAST(:watermark AS TIMESTAMP) IS NULL
      OR `src`.`viewed_at` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '14' DAY
    )
), `user_category_browsing__delta` AS (
  SELECT
    `user_id`,
    `category`,
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
  FROM `user_category_browsing__events`
  WHERE
    (
      `__avail` < CAST(:as_of AS TIMESTAMP)
      AND (
        CAST(:watermark AS TIMESTAMP) IS NULL
        OR `__avail` >= CAST(:watermark AS TIMESTAMP)
      )
      OR `__avail` < CAST(:watermark AS TIMESTAMP)
      AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '7' DAY
      AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      OR `__avail` < CAST(:watermark AS TIMESTAMP)
      AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '14' DAY
      AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '14' DAY
    )
  UNION ALL
  SELECT
    `user_id`,
    `category`,
    CAST(NULL AS TIMESTAMP) AS `__ts`,
    0 AS `__new`,
    1 AS `__dirty`
  FROM `__fsdsl_dirty_user_category_browsing`
), `user_category_browsing__changed` AS (
  SELECT
    `user_id`,
    `category`,
    MAX(
      CASE
        WHEN `__new` = 0
        AND `__ts` < CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
        AND `__ts` >= CAST(:watermark AS TIMESTAMP) - INTERVAL '7' DAY
        THEN 1
        ELSE 0
      END
    ) AS `__l0`,
    MAX(`__dirty`) AS `__dirty`
  FROM `user_category_browsing__delta`
  GROUP BY
    `user_id`,
    `category`
), `user_category_browsing__rows` AS (
  SELECT
    `e`.`user_id`,
    `e`.`category`,
    `e`.`__ts`,
    `e`.`__a0`,
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
    `f`.`__dirty`
  FROM `user_category_browsing__events` AS `e`
  INNER JOIN `user_category_browsing__changed` AS `f`
    ON `e`.`user_id` = `f`.`user_id` AND `e`.`category` = `f`.`category`
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
      AND `e`.`__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
    )
), `user_category_browsing__parts` AS (
  SELECT
    `s`.`user_id`,
    `s`.`category`,
    CAST(CASE WHEN NOT (
      `f`.`__l0` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__c0` END AS BIGINT) AS `__c0`,
    CAST(CASE WHEN NOT (
      `f`.`__l0` = 1 OR `f`.`__dirty` = 1
    ) THEN `s`.`__s1` END AS DOUBLE) AS `__s1`,
    `s`.`__lt`
  FROM `__fsdsl_state_user_category_browsing` AS `s`
  INNER JOIN `user_category_browsing__changed` AS `f`
    ON `s`.`user_id` = `f`.`user_id` AND `s`.`category` = `f`.`category`
  UNION ALL
  SELECT
    `user_id`,
    `category`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        `__new` = 1 OR (
          `__l0` = 1 OR `__dirty` = 1
        )
      )
      THEN 1
      ELSE 0
    END AS BIGINT) AS `__c0`,
    CAST(CASE
      WHEN `__ts` >= CAST(:as_of AS TIMESTAMP) - INTERVAL '7' DAY
      AND (
        `__new` = 1 OR (
          `__l0` = 1 OR `__dirty` = 1
        )
      )
      THEN `__a0`
    END AS DOUBLE) AS `__s1`,
    `__ts` AS `__lt`
  FROM `user_category_browsing__rows`
), `user_category_browsing__merged` AS (
  SELECT
    `user_id`,
    `category`,
    CAST(SUM(`__c0`) AS BIGINT) AS `__c0`,
    SUM(`__c0`) AS `__r0`,
    CAST(SUM(`__s1`) AS DOUBLE) AS `__s1`,
    SUM(`__s1`) AS `__r1`,
    MAX(`__lt`) AS `__lt`,
    CASE
      WHEN MAX(`__lt`) >= CAST(:as_of AS TIMESTAMP) - INTERVAL '14' DAY
      THEN 1
      ELSE 0
    END AS `__ttl`
  FROM `user_category_browsing__parts`
  GROUP BY
    `user_id`,
    `category`
)
SELECT
  `f`.`user_id`,
  `f`.`category`,
  CAST(:as_of AS TIMESTAMP) AS `as_of`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`r0`.`__r0`, 0) AS BIGINT)
  END AS `category_views_7d`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(ROUND(`r0`.`__r1`, 1) AS DOUBLE)
  END AS `category_dwell_7d`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(CAST(COALESCE(`r0`.`__r0`, 0) AS DOUBLE) / NULLIF(NULLIF(COALESCE(`r0`.`__r0`, 0) + 1, 0), 0) AS DOUBLE)
  END AS `category_share_7d`,
  `r0`.`__c0` AS `__c0`,
  `r0`.`__s1` AS `__s1`,
  `r0`.`__lt` AS `__lt`
FROM `user_category_browsing__changed` AS `f`
LEFT JOIN `user_category_browsing__merged` AS `r0`
  ON `f`.`user_id` = `r0`.`user_id` AND `f`.`category` = `r0`.`category`
