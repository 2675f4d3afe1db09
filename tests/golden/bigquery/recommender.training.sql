WITH `user_browsing__spine` AS (
  /* user_browsing: ttl running, count(*) over 1h range join, count(*) over 24h range join, count(*) over 7d range join, avg(__a0) over 7d range join, sum(__a1) over 7d range join, count_distinct(__a2) over 7d range join, last(__a3) running, max(__a4) running, first(__a4) over 2w range join, last_k(__a5, 5) over 7d range join, count(__a1) over 24h range join */
  SELECT DISTINCT
    `user_id`,
    `event_timestamp` AS `__t`
  FROM `labels`
), `user_browsing__events` AS (
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
    NOT `src`.`visitor_id` IS NULL AND NOT `src`.`viewed_at` IS NULL
), `user_browsing__wspine` AS (
  SELECT
    `user_id`,
    `__t`,
    FLOOR(UNIX_SECONDS(CAST(`__t` AS TIMESTAMP)) / 1209600) AS `__b`
  FROM `user_browsing__spine`
  UNION ALL
  SELECT
    `user_id`,
    `__t`,
    FLOOR(UNIX_SECONDS(CAST(`__t` AS TIMESTAMP)) / 1209600) - 1 AS `__b`
  FROM `user_browsing__spine`
), `user_browsing__wevents` AS (
  SELECT
    `user_id`,
    `__ts`,
    `__avail`,
    `__a0`,
    `__a1`,
    `__a2`,
    `__a4`,
    `__a5`,
    FLOOR(UNIX_SECONDS(CAST(`__ts` AS TIMESTAMP)) / 1209600) AS `__b`
  FROM `user_browsing__events`
), `user_browsing__wjoin` AS (
  SELECT
    `s`.`user_id`,
    `s`.`__t`,
    `e`.`__ts`,
    `e`.`__a0`,
    `e`.`__a1`,
    `e`.`__a2`,
    `e`.`__a4`,
    `e`.`__a5`,
    CASE WHEN NOT `e`.`__a4` IS NULL THEN 1 ELSE 0 END AS `__v8`,
    ROW_NUMBER() OVER (
      PARTITION BY `s`.`user_id`, `s`.`__t`, CASE WHEN NOT `e`.`__a4` IS NULL THEN 1 ELSE 0 END
      ORDER BY `e`.`__ts` ASC NULLS LAST, `e`.`__a4` ASC NULLS LAST
    ) AS `__n8`,
    CASE
      WHEN `e`.`__ts` >= `s`.`__t` - INTERVAL '7' DAY AND NOT `e`.`__a5` IS NULL
      THEN 1
      ELSE 0
    END AS `__v9`,
    ROW_NUMBER() OVER (
      PARTITION BY `s`.`user_id`, `s`.`__t`, CASE
        WHEN `e`.`__ts` >= `s`.`__t` - INTERVAL '7' DAY AND NOT `e`.`__a5` IS NULL
        THEN 1
        ELSE 0
      END
      ORDER BY `e`.`__ts` DESC, `e`.`__a5` DESC
    ) AS `__n9`
  FROM `user_browsing__wspine` AS `s`
  INNER JOIN `user_browsing__wevents` AS `e`
    ON `s`.`user_id` = `e`.`user_id`
    AND `s`.`__b` = `e`.`__b`
    AND `e`.`__ts` >= `s`.`__t` - INTERVAL '14' DAY
    AND `e`.`__ts` < `s`.`__t`
), `user_browsing__wdistinct5` AS (
  SELECT
    `user_id`,
    `__t`,
    COUNT(*) AS `__r5`
  FROM (
    SELECT DISTINCT
      `user_id`,
      `__t`,
      `__a2`
    FROM `user_browsing__wjoin`
    WHERE
      `__ts` >= `__t` - INTERVAL '7' DAY AND NOT `__a2` IS NULL
  ) AS `d`
  GROUP BY
    `user_id`,
    `__t`
), `user_browsing__wagg` AS (
  SELECT
    `user_id`,
    `__t`,
    COUNT(CASE WHEN `__ts` >= `__t` - INTERVAL '1' HOUR THEN 1 END) AS `__r0`,
    COUNT(CASE WHEN `__ts` >= `__t` - INTERVAL '24' HOUR THEN 1 END) AS `__r1`,
    COUNT(CASE WHEN `__ts` >= `__t` - INTERVAL '7' DAY THEN 1 END) AS `__r2`,
    AVG(CAST(CASE WHEN `__ts` >= `__t` - INTERVAL '7' DAY THEN `__a0` END AS FLOAT64)) AS `__r3`,
    SUM(CASE WHEN `__ts` >= `__t` - INTERVAL '7' DAY THEN `__a1` END) AS `__r4`,
    MAX(CASE WHEN `__v8` = 1 AND `__n8` = 1 THEN `__a4` END) AS `__r8`,
    ARRAY_AGG(IF(`__v9` = 1 AND `__n9` <= 5, `__a5`, NULL) IGNORE NULLS ORDER BY `__n9`) AS `__r9`,
    COUNT(CASE WHEN `__ts` >= `__t` - INTERVAL '24' HOUR THEN `__a1` END) AS `__r10`
  FROM `user_browsing__wjoin`
  GROUP BY
    `user_id`,
    `__t`
), `user_browsing__ranked` AS (
  SELECT
    `e`.`user_id`,
    `e`.`__ts`,
    `e`.`__avail`,
    `e`.`__a3`,
    CASE
      WHEN NOT `e`.`__a3` IS NULL
      THEN ROW_NUMBER() OVER (
        PARTITION BY `e`.`user_id`, CASE WHEN NOT `e`.`__a3` IS NULL THEN 1 ELSE 0 END
        ORDER BY `e`.`__ts` ASC NULLS LAST, `e`.`__a3` ASC NULLS LAST
      )
    END AS `__k3`,
    `e`.`__a4`
  FROM `user_browsing__events` AS `e`
  WHERE
    EXISTS(
      SELECT
        1
      FROM `user_browsing__spine` AS `sp`
      WHERE
        `sp`.`user_id` = `e`.`user_id`
    )
), `user_browsing__stream` AS (
  SELECT
    `user_id`,
    `__t` AS `__at`,
    0 AS `__kind`,
    `__t`,
    CAST(NULL AS INT64) AS `__k3`,
    CAST(NULL AS DATETIME) AS `__a4`,
    CAST(NULL AS DATETIME) AS `__ts`
  FROM `user_browsing__spine`
  UNION ALL
  SELECT
    `user_id`,
    `__avail` AS `__at`,
    1 AS `__kind`,
    CAST(NULL AS DATETIME) AS `__t`,
    `__k3`,
    `__a4`,
    `__ts`
  FROM `user_browsing__ranked`
), `user_browsing__running` AS (
  SELECT
    `user_id`,
    `__t`,
    `__kind`,
    MAX(`__k3`) OVER (
      PARTITION BY `user_id`
      ORDER BY `__at`, `__kind`
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS `__r6`,
    MAX(`__a4`) OVER (
      PARTITION BY `user_id`
      ORDER BY `__at`, `__kind`
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS `__r7`,
    MAX(`__ts`) OVER (
      PARTITION BY `user_id`
      ORDER BY `__at`, `__kind`
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS `__lt`
  FROM `user_browsing__stream`
), `user_browsing__cagg` AS (
  SELECT
    `r`.`user_id`,
    `r`.`__t`,
    `x6`.`__a3` AS `__r6`,
    `r`.`__r7`,
    CASE WHEN `r`.`__lt` >= `r`.`__t` - INTERVAL '30' DAY THEN 1 ELSE 0 END AS `__ttl`
  FROM `user_browsing__running` AS `r`
  LEFT JOIN `user_browsing__ranked` AS `x6`
    ON `r`.`user_id` = `x6`.`user_id` AND `x6`.`__k3` = `r`.`__r6`
  WHERE
    `r`.`__kind` = 0
), `user_category_browsing__spine` AS (
  /* user_category_browsing: ttl range join, count(*) over 7d range join, sum(__a0) over 7d range join */
  SELECT DISTINCT
    `user_id`,
    `category`,
    `event_timestamp` AS `__t`
  FROM `labels`
), `user_category_browsing__events` AS (
  SELECT
    `src`.`visitor_id` AS `user_id`,
    `src`.`category` AS `category`,
    `src`.`viewed_at` AS `__ts`,
    `src`.`viewed_at` AS `__avail`,
    `src`.`dwell_seconds` AS `__a0`
  FROM `web`.`page_views` AS `src`
  WHERE
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
), `user_category_browsing__wspine` AS (
  SELECT
    `user_id`,
    `category`,
    `__t`,
    FLOOR(UNIX_SECONDS(CAST(`__t` AS TIMESTAMP)) / 1209600) AS `__b`
  FROM `user_category_browsing__spine`
  UNION ALL
  SELECT
    `user_id`,
    `category`,
    `__t`,
    FLOOR(UNIX_SECONDS(CAST(`__t` AS TIMESTAMP)) / 1209600) - 1 AS `__b`
  FROM `user_category_browsing__spine`
), `user_category_browsing__wevents` AS (
  SELECT
    `user_id`,
    `category`,
    `__ts`,
    `__avail`,
    `__a0`,
    FLOOR(UNIX_SECONDS(CAST(`__ts` AS TIMESTAMP)) / 1209600) AS `__b`
  FROM `user_category_browsing__events`
), `user_category_browsing__wjoin` AS (
  SELECT
    `s`.`user_id`,
    `s`.`category`,
    `s`.`__t`,
    `e`.`__ts`,
    `e`.`__a0`
  FROM `user_category_browsing__wspine` AS `s`
  INNER JOIN `user_category_browsing__wevents` AS `e`
    ON `s`.`user_id` = `e`.`user_id`
    AND `s`.`category` = `e`.`category`
    AND `s`.`__b` = `e`.`__b`
    AND `e`.`__ts` >= `s`.`__t` - INTERVAL '14' DAY
    AND `e`.`__ts` < `s`.`__t`
), `user_category_browsing__wagg` AS (
  SELECT
    `user_id`,
    `category`,
    `__t`,
    COUNT(CASE WHEN `__ts` >= `__t` - INTERVAL '7' DAY THEN 1 END) AS `__r0`,
    SUM(CASE WHEN `__ts` >= `__t` - INTERVAL '7' DAY THEN `__a0` END) AS `__r1`,
    COUNT(*) AS `__ttl`
  FROM `user_category_browsing__wjoin`
  GROUP BY
    `user_id`,
    `category`,
    `__t`
), `user_orders__spine` AS (
  /* user_orders: ttl running, last(__a0) running */
  SELECT DISTINCT
    `user_id`,
    `event_timestamp` AS `__t`
  FROM `labels`
), `user_orders__events` AS (
  SELECT
    `src`.`user_id` AS `user_id`,
    `src`.`event_timestamp` AS `__ts`,
    `src`.`created_at` AS `__created`,
    CASE
      WHEN `src`.`created_at` > `src`.`event_timestamp`
      THEN `src`.`created_at`
      ELSE `src`.`event_timestamp`
    END AS `__avail`,
    `src`.`amount` AS `__a0`
  FROM `orders` AS `src`
  WHERE
    NOT `src`.`user_id` IS NULL
    AND NOT `src`.`event_timestamp` IS NULL
    AND NOT `src`.`created_at` IS NULL
    AND (
      `src`.`status` = 'completed'
    )
), `user_orders__ranked` AS (
  SELECT
    `e`.`user_id`,
    `e`.`__ts`,
    `e`.`__avail`,
    `e`.`__created`,
    `e`.`__a0`,
    CASE
      WHEN NOT `e`.`__a0` IS NULL
      THEN ROW_NUMBER() OVER (
        PARTITION BY `e`.`user_id`, CASE WHEN NOT `e`.`__a0` IS NULL THEN 1 ELSE 0 END
        ORDER BY `e`.`__ts` ASC NULLS LAST, `e`.`__created` ASC NULLS LAST, `e`.`__a0` ASC NULLS LAST
      )
    END AS `__k0`
  FROM `user_orders__events` AS `e`
  WHERE
    EXISTS(
      SELECT
        1
      FROM `user_orders__spine` AS `sp`
      WHERE
        `sp`.`user_id` = `e`.`user_id`
    )
), `user_orders__stream` AS (
  SELECT
    `user_id`,
    `__t` AS `__at`,
    0 AS `__kind`,
    `__t`,
    CAST(NULL AS INT64) AS `__k0`,
    CAST(NULL AS DATETIME) AS `__ts`
  FROM `user_orders__spine`
  UNION ALL
  SELECT
    `user_id`,
    `__avail` AS `__at`,
    1 AS `__kind`,
    CAST(NULL AS DATETIME) AS `__t`,
    `__k0`,
    `__ts`
  FROM `user_orders__ranked`
), `user_orders__running` AS (
  SELECT
    `user_id`,
    `__t`,
    `__kind`,
    MAX(`__k0`) OVER (
      PARTITION BY `user_id`
      ORDER BY `__at`, `__kind`
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS `__r0`,
    MAX(`__ts`) OVER (
      PARTITION BY `user_id`
      ORDER BY `__at`, `__kind`
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS `__lt`
  FROM `user_orders__stream`
), `user_orders__cagg` AS (
  SELECT
    `r`.`user_id`,
    `r`.`__t`,
    `x0`.`__a0` AS `__r0`,
    CASE WHEN `r`.`__lt` >= `r`.`__t` - INTERVAL '60' DAY THEN 1 ELSE 0 END AS `__ttl`
  FROM `user_orders__running` AS `r`
  LEFT JOIN `user_orders__ranked` AS `x0`
    ON `r`.`user_id` = `x0`.`user_id` AND `x0`.`__k0` = `r`.`__r0`
  WHERE
    `r`.`__kind` = 0
)
SELECT
  `l`.*,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`v0r1`.`__r0`, 0) AS INT64)
  END AS `views_1h`,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`v0r1`.`__r1`, 0) AS INT64)
  END AS `views_24h`,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`v0r1`.`__r2`, 0) AS INT64)
  END AS `views_7d`,
  CASE WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0 THEN CAST(`v0r1`.`__r3` AS FLOAT64) END AS `mobile_share_7d`,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN CAST(`v0r1`.`__r4` / NULLIF(NULLIF(COALESCE(`v0r1`.`__r2`, 0), 0), 0) AS FLOAT64)
  END AS `dwell_per_view_7d`,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`v0r0`.`__r5`, 0) AS INT64)
  END AS `categories_7d`,
  CASE WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0 THEN CAST(`v0r2`.`__r6` AS STRING) END AS `last_category`,
  CASE WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0 THEN CAST(`v0r2`.`__r7` AS DATETIME) END AS `last_view_at`,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN CAST(EXTRACT(HOUR FROM `v0r1`.`__r8`) AS INT64)
  END AS `first_view_hour_2w`,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN COALESCE(`v0r1`.`__r9`, ARRAY<STRING>[])
  END AS `recent_products`,
  CASE
    WHEN COALESCE(`v0r2`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`v0r1`.`__r10`, 0) AS INT64)
  END AS `long_views_24h`,
  CASE
    WHEN COALESCE(`v1r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`v1r0`.`__r0`, 0) AS INT64)
  END AS `category_views_7d`,
  CASE
    WHEN COALESCE(`v1r0`.`__ttl`, 0) > 0
    THEN CAST(ROUND(`v1r0`.`__r1`, 1) AS FLOAT64)
  END AS `category_dwell_7d`,
  CASE
    WHEN COALESCE(`v1r0`.`__ttl`, 0) > 0
    THEN CAST(CAST(COALESCE(`v1r0`.`__r0`, 0) AS FLOAT64) / NULLIF(NULLIF(COALESCE(`v1r0`.`__r0`, 0) + 1, 0), 0) AS FLOAT64)
  END AS `category_share_7d`,
  CASE WHEN COALESCE(`v2r0`.`__ttl`, 0) > 0 THEN CAST(`v2r0`.`__r0` AS FLOAT64) END AS `last_amount`
FROM `labels` AS `l`
LEFT JOIN `user_browsing__wdistinct5` AS `v0r0`
  ON `l`.`user_id` = `v0r0`.`user_id` AND `l`.`event_timestamp` = `v0r0`.`__t`
LEFT JOIN `user_browsing__wagg` AS `v0r1`
  ON `l`.`user_id` = `v0r1`.`user_id` AND `l`.`event_timestamp` = `v0r1`.`__t`
LEFT JOIN `user_browsing__cagg` AS `v0r2`
  ON `l`.`user_id` = `v0r2`.`user_id` AND `l`.`event_timestamp` = `v0r2`.`__t`
LEFT JOIN `user_category_browsing__wagg` AS `v1r0`
  ON `l`.`user_id` = `v1r0`.`user_id`
  AND `l`.`category` = `v1r0`.`category`
  AND `l`.`event_timestamp` = `v1r0`.`__t`
LEFT JOIN `user_orders__cagg` AS `v2r0`
  ON `l`.`user_id` = `v2r0`.`user_id` AND `l`.`event_timestamp` = `v2r0`.`__t`
