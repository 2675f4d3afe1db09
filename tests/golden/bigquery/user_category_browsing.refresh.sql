WITH `user_category_browsing__events` AS (
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
), `user_category_browsing__spine` AS (
  SELECT DISTINCT
    `user_id`,
    `category`,
    CAST(@as_of AS DATETIME) AS `__t`
  FROM `user_category_browsing__events`
  WHERE
    (
      `__avail` < CAST(@as_of AS DATETIME)
      AND (
        CAST(@watermark AS DATETIME) IS NULL OR `__avail` >= CAST(@watermark AS DATETIME)
      )
    )
    OR (
      `__ts` >= CAST(@watermark AS DATETIME) - INTERVAL '7' DAY
      AND `__ts` < CAST(@as_of AS DATETIME) - INTERVAL '7' DAY
    )
    OR (
      `__ts` >= CAST(@watermark AS DATETIME) - INTERVAL '14' DAY
      AND `__ts` < CAST(@as_of AS DATETIME) - INTERVAL '14' DAY
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
)
SELECT
  `s`.`user_id`,
  `s`.`category`,
  `s`.`__t` AS `as_of`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(COALESCE(`r0`.`__r0`, 0) AS INT64)
  END AS `category_views_7d`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(ROUND(`r0`.`__r1`, 1) AS FLOAT64)
  END AS `category_dwell_7d`,
  CASE
    WHEN COALESCE(`r0`.`__ttl`, 0) > 0
    THEN CAST(CAST(COALESCE(`r0`.`__r0`, 0) AS FLOAT64) / NULLIF(NULLIF(COALESCE(`r0`.`__r0`, 0) + 1, 0), 0) AS FLOAT64)
  END AS `category_share_7d`
FROM `user_category_browsing__spine` AS `s`
LEFT JOIN `user_category_browsing__wagg` AS `r0`
  ON `s`.`user_id` = `r0`.`user_id`
  AND `s`.`category` = `r0`.`category`
  AND `s`.`__t` = `r0`.`__t`
