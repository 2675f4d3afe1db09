"""What differs between warehouses, in one place.

sqlglot translates most of the tree; this module holds the few constructs whose translation is
missing or changes meaning (epoch seconds, ordered list aggregation, rounding a double), so that
the compiler itself never branches on a dialect name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlglot import exp

from fsdsl import ir

# sqlglot warns when a dialect cannot express NULLS FIRST/LAST; our sort keys are never null.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECTS = (
    "duckdb",
    "postgres",
    "spark",
    "snowflake",
    "bigquery",
    "trino",
    "databricks",
    "redshift",
)

# The element variable of the array forms of `greatest`/`least`; user names cannot start with `__`.
_ITEM = "__x"

_UNITS = {
    "s": ("SECOND", 1),
    "m": ("MINUTE", 1),
    "h": ("HOUR", 1),
    "d": ("DAY", 1),
    "w": ("DAY", 7),
}


@dataclass(frozen=True)
class Dialect:
    name: str

    # ---- types ----
    def sql_type(self, t: ir.Type) -> exp.DataType:
        if t.name == "list":
            return exp.DataType(
                this=exp.DataType.Type.ARRAY, expressions=[self.sql_type(t.element)], nested=True
            )
        return exp.DataType.build(
            {
                "string": "VARCHAR",
                "int": "BIGINT",
                "float": "DOUBLE",
                "bool": "BOOLEAN",
                "timestamp": "TIMESTAMP",
                "date": "DATE",
                "null": "VARCHAR",
            }[t.name]
        )

    @property
    def has_asof(self) -> bool:
        """An ASOF join sqlglot prints faithfully (it prints ASOF verbatim everywhere else)."""
        return self.name == "duckdb"

    def cast(self, e: exp.Expression, t: ir.Type) -> exp.Expression:
        return exp.Cast(this=e, to=self.sql_type(t))

    def typed_null(self, t: ir.Type) -> exp.Expression:
        return self.cast(exp.Null(), t)

    # ---- time ----
    def interval(self, d: ir.Duration) -> exp.Expression:
        unit, mult = _UNITS[d.unit]
        return exp.Interval(this=exp.Literal.string(str(d.amount * mult)), unit=exp.var(unit))

    def minus(self, t: exp.Expression, d: ir.Duration) -> exp.Expression:
        return exp.Sub(this=t, expression=self.interval(d))

    def epoch_seconds(self, t: exp.Expression) -> exp.Expression:
        """Seconds since 1970 as a number; only its monotonicity is relied upon (buckets)."""
        if self.name == "bigquery":  # naive times are DATETIME there; UNIX_SECONDS wants TIMESTAMP
            return exp.UnixSeconds(this=exp.Cast(this=t, to=exp.DataType.build("TIMESTAMPTZ")))
        if self.name in ("spark", "databricks"):
            return exp.UnixSeconds(this=t)
        return exp.TimeToUnix(this=t)

    def truncate(self, t: exp.Expression, unit: str) -> exp.Expression:
        if self.name == "bigquery":  # TIMESTAMP_TRUNC does not take a DATETIME
            # WEEK is WEEK(SUNDAY) there; the language's weeks start on Monday, as ISO weeks do.
            return exp.DatetimeTrunc(this=t, unit=exp.var("ISOWEEK" if unit == "WEEK" else unit))
        return exp.TimestampTrunc(this=t, unit=exp.var(unit))

    def extract(self, part: str, t: exp.Expression) -> exp.Expression:
        """`extract` as a whole number: postgres and spark give the seconds with their fraction
        (30.123456), which a cast to BIGINT would round up where the contract truncates; redshift
        is treated alike, harmlessly if its seconds are already whole."""
        value = exp.Extract(this=exp.var(part.upper()), expression=t)
        if part == "second" and self.name in ("postgres", "redshift", "spark", "databricks"):
            return exp.Cast(this=exp.Floor(this=value), to=exp.DataType.build("BIGINT"))
        return value

    # ---- aggregation ----
    def ordered_list(
        self,
        value: exp.Expression,
        order: exp.Expression,
        condition: exp.Expression,
        element: ir.Type,
    ) -> exp.Expression:
        """The values of the rows meeting `condition`, ascending by `order`; NULL when none."""
        if self.name == "redshift":
            # No ARRAY_AGG: build a JSON array text with LISTAGG and parse it into SUPER.
            item = exp.Case(ifs=[exp.If(this=condition, true=_json_text(value, element))])
            agg = exp.WithinGroup(
                this=exp.Anonymous(this="LISTAGG", expressions=[item, exp.Literal.string(",")]),
                expression=exp.Order(expressions=[exp.Ordered(this=order)]),
            )
            text = exp.DPipe(
                this=exp.DPipe(this=exp.Literal.string("["), expression=agg),
                expression=exp.Literal.string("]"),
            )
            return exp.Anonymous(this="JSON_PARSE", expressions=[text])
        if self.name in ("spark", "databricks"):
            pairs = exp.Filter(
                this=exp.Anonymous(
                    this="COLLECT_LIST",
                    expressions=[
                        exp.Struct(expressions=[exp.alias_(order, "r"), exp.alias_(value, "v")])
                    ],
                ),
                expression=exp.Where(this=condition),
            )
            lst = exp.Transform(
                this=exp.ArraySort(this=pairs),
                expression=exp.Lambda(
                    this=exp.Dot(this=exp.column("s"), expression=exp.to_identifier("v")),
                    expressions=[exp.to_identifier("s")],
                ),
            )
            # collect_list gives [] for no rows where the others give NULL; callers coalesce.
            return lst
        agg = exp.ArrayAgg(this=exp.Order(this=value, expressions=[exp.Ordered(this=order)]))
        return exp.Filter(this=agg, expression=exp.Where(this=condition))

    def empty_list(self, element: ir.Type) -> exp.Expression:
        if self.name == "redshift":
            return exp.Anonymous(this="JSON_PARSE", expressions=[exp.Literal.string("[]")])
        return exp.Cast(this=exp.Array(expressions=[]), to=self.sql_type(ir.list_of(element)))

    def extreme(self, args: list[exp.Expression], largest: bool) -> exp.Expression:
        """GREATEST/LEAST of two or more values, skipping nulls: null only when all are null.

        duckdb, postgres, redshift and spark already skip nulls; snowflake has *_IGNORE_NULLS
        (sqlglot's `ignore_nulls`); bigquery and trino return null as soon as one argument is, so
        there the arguments go into an array whose nulls are skipped. Each argument appears once:
        a form that tests an argument for null and then uses it would double the SQL at each
        level of nesting.
        """
        item = exp.to_identifier(_ITEM)
        if self.name == "trino":
            # ARRAY_MAX is null as soon as one element is, and null for an empty array.
            present = exp.Lambda(
                this=exp.column(item.copy()).is_(exp.null()).not_(), expressions=[item.copy()]
            )
            kept = exp.ArrayFilter(this=exp.Array(expressions=args), expression=present)
            return exp.ArrayMax(this=kept) if largest else exp.ArrayMin(this=kept)
        if self.name == "bigquery":
            # MAX/MIN skip nulls and give null for no rows; the array literal coerces its
            # elements to their common supertype, which the compiler has already made explicit.
            pick = exp.Max if largest else exp.Min
            values = exp.Unnest(
                expressions=[exp.Array(expressions=args)],
                alias=exp.TableAlias(columns=[item.copy()]),
            )
            return exp.Subquery(this=exp.select(pick(this=exp.column(item))).from_(values))
        cls = exp.Greatest if largest else exp.Least
        return cls(this=args[0], expressions=args[1:], ignore_nulls=True)

    def pick(self, e: exp.Expression, t: ir.Type, largest: bool = True) -> exp.Expression:
        """MAX/MIN that also works on booleans (postgres has no MAX(boolean))."""
        if t == ir.BOOL:
            return exp.LogicalOr(this=e) if largest else exp.LogicalAnd(this=e)
        return exp.Max(this=e) if largest else exp.Min(this=e)

    def round(self, x: exp.Expression, digits: exp.Expression | None, t: ir.Type):
        """ROUND with halves away from zero of the exact binary value, as language.md promises."""
        if t == ir.FLOAT and self.name == "postgres":
            # ROUND(double precision) rounds halves to even and ROUND(double precision, int) does
            # not exist; a cast to NUMERIC keeps 15 digits (0.49999999999999994 becomes 0.5).
            return exp.replace_placeholders(
                _PG_ROUND.copy(), x=x, d=digits if digits is not None else exp.Literal.number(0)
            )
        # redshift's ROUND takes a FLOAT8 with digits; its DECIMAL is DECIMAL(18, 0), so a cast
        # to it would drop the digits before ROUND could keep them.
        return exp.Round(this=x, decimals=digits)


# round(x, d) of a double on postgres, exactly: the IEEE bits of x (FLOAT8SEND) give an integer
# mantissa __m and a power of two __q with x = __m / 2^__q; the multiple of 10^-d nearest that
# fraction, halves away from zero, is then integer arithmetic in NUMERIC. x itself when it is
# infinite or NaN (__e = 2047), when it is already whole at d digits (|x| * 10^d >= 2^53), and
# when the rounded value is past the largest double, as DuckDB does. Digits past a double's
# last binary digit (1074) or above 10^400 change nothing, so d is clamped to spare NUMERIC
# work. A scalar subquery names x once, so nesting `round` does not repeat the argument's text.
# A constant tree, parsed once; `:x` and `:d` are replaced by the argument trees.
_PG_ROUND = exp.maybe_parse(
    """(SELECT CASE
      WHEN "__e" = 2047 THEN "__x"
      WHEN "__d" >= 0
        AND ABS("__x") >= 9007199254740992 / POWER(CAST(10 AS DOUBLE PRECISION), LEAST("__d", 308))
        THEN "__x"
      WHEN ABS("__n") >= 1.7976931348623158e308 THEN "__x"
      ELSE CAST("__n" AS DOUBLE PRECISION) * SIGN("__x")
    END
    FROM (
      SELECT "__x", "__e", "__d",
        DIV(
          2 * "__m" * CAST(10 AS NUMERIC) ^ GREATEST("__d", 0)
            * CAST(2 AS NUMERIC) ^ GREATEST(-"__q", 0)
            + CAST(2 AS NUMERIC) ^ GREATEST("__q", 0) * CAST(10 AS NUMERIC) ^ GREATEST(-"__d", 0),
          2 * CAST(2 AS NUMERIC) ^ GREATEST("__q", 0) * CAST(10 AS NUMERIC) ^ GREATEST(-"__d", 0)
        ) * CAST('1e' || CAST(-"__d" AS TEXT) AS NUMERIC) AS "__n"
      FROM (
        SELECT "__x", "__d", "__e", 1075 - GREATEST("__e", 1) AS "__q",
          ("__b" & 4503599627370495)
            + CASE WHEN "__e" > 0 THEN 4503599627370496 ELSE 0 END AS "__m"
        FROM (
          SELECT "__x", "__d", "__b", ("__b" >> 52) & 2047 AS "__e"
          FROM (
            SELECT "__x", "__d",
              CAST(CAST('x' || ENCODE(FLOAT8SEND("__x"), 'hex') AS BIT(64)) AS BIGINT) AS "__b"
            FROM (
              SELECT CAST(:x AS DOUBLE PRECISION) AS "__x",
                GREATEST(LEAST(CAST(:d AS BIGINT), 1100), -400) AS "__d"
            ) AS "__r0"
          ) AS "__r1"
        ) AS "__r2"
      ) AS "__r3"
    ) AS "__r4")""",
    dialect="postgres",
)


def _json_text(value: exp.Expression, t: ir.Type) -> exp.Expression:
    """`value` as JSON text, for dialects that assemble arrays from strings."""
    if t.is_numeric:
        return exp.Cast(this=value, to=exp.DataType.build("VARCHAR"))
    if t == ir.BOOL:
        return exp.Case(
            ifs=[exp.If(this=value, true=exp.Literal.string("true"))],
            default=exp.Literal.string("false"),
        )
    text = exp.Cast(this=value, to=exp.DataType.build("VARCHAR"))
    for old, new in (("\\", "\\\\"), ('"', '\\"')):
        text = exp.Anonymous(
            this="REPLACE", expressions=[text, exp.Literal.string(old), exp.Literal.string(new)]
        )
    quote = exp.Literal.string('"')
    return exp.DPipe(this=exp.DPipe(this=quote, expression=text), expression=quote.copy())


def get(name: str) -> Dialect:
    if name not in DIALECTS:
        raise ValueError(name)
    return Dialect(name)
