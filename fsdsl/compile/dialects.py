"""What differs between warehouses, one class per dialect.

sqlglot translates most of the tree; the dialects here hold the few constructs whose translation
is missing or changes meaning (epoch seconds, ordered list aggregation, rounding a double), so
that the compiler itself never branches on a dialect name. As in sqlglot, `Dialect` is the
portable behaviour and each warehouse's subclass overrides only what differs; defining a subclass
with a `name` of its own registers it, and `get(name)` returns an instance. Other packages add
dialects through entry points in the `fsdsl.dialects` group (`name = "module:Class"`), loaded on
first use, or a backend brings its own (`Warehouse.dialect`, fsdsl/backends/base.py).
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, ClassVar

from sqlglot import exp

from fsdsl import ir
from fsdsl.diagnostics import UsageError

if TYPE_CHECKING:
    import sqlglot

# sqlglot warns when a dialect cannot express NULLS FIRST/LAST; our sort keys are never null.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

ENTRY_POINTS = "fsdsl.dialects"

# The built-in dialects, in the order the golden files list them.
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


# name -> class; filled by `Dialect.__init_subclass__` and by the plug-ins `get` loads.
_CLASSES: dict[str, type[Dialect]] = {}


class Dialect:
    """The portable forms: what a warehouse running standard SQL, with sqlglot's translation,
    needs. A subclass overrides a method where its warehouse lacks a construct or gives it
    another meaning, and sets the capabilities below that it has."""

    # The registry key and the `--dialect` value; a subclass without one of its own (a shared
    # base) is not registered.
    name: ClassVar[str] = ""
    # What sqlglot prints the trees with: a sqlglot dialect name or class. Inherited, so a
    # plug-in deriving from `Postgres` under its own name prints Postgres; the name itself when
    # no class above sets one.
    sqlglot_dialect: ClassVar[str | type[sqlglot.Dialect] | None] = None

    # ---- capabilities ----
    # An ASOF join sqlglot prints faithfully (it prints ASOF verbatim for dialects without one).
    has_asof: ClassVar[bool] = False
    # Structs compare field by field (`max({'t': ts, 'v': x})` is the row of the latest ts, ties
    # to the greatest x): an arg-max in one running aggregate.
    ordered_structs: ClassVar[bool] = False
    # `entity_bucket` exists: a training set can run as one query per share of the entities.
    splits_by_entity: ClassVar[bool] = False
    # Its backend binds parameters by position (`$1`, `$2`, ...) rather than by name: a named
    # style found by scanning the text (psycopg's `%(as_of)s`) would read a `%` in any literal or
    # name of a definition as a placeholder (fsdsl/compile/render.py).
    positional_parameters: ClassVar[bool] = False
    # EXTRACT(SECOND ...) gives the fraction too (30.123456).
    fractional_seconds: ClassVar[bool] = False
    # `%` printed as MOD(), so that a driver scanning the text for `%(name)s` meets none.
    mod_as_function: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            if cls.sqlglot_dialect is None:
                cls.sqlglot_dialect = cls.name
            register(cls)

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

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

    def cast(self, e: exp.Expression, t: ir.Type) -> exp.Expression:
        return exp.Cast(this=e, to=self.sql_type(t))

    def typed_null(self, t: ir.Type) -> exp.Expression:
        return self.cast(exp.Null(), t)

    def entity_bucket(self, keys: list[exp.Expression], buckets: int) -> exp.Expression:
        """A number in [0, buckets) that depends only on the key values (typed alike on both
        sides), for running one query per share of the entities (`splits_by_entity`)."""
        raise ValueError(f"{self.name} cannot split a query by entity")

    # ---- time ----
    def interval(self, d: ir.Duration) -> exp.Expression:
        unit, mult = _UNITS[d.unit]
        return exp.Interval(this=exp.Literal.string(str(d.amount * mult)), unit=exp.var(unit))

    def minus(self, t: exp.Expression, d: ir.Duration) -> exp.Expression:
        return exp.Sub(this=t, expression=self.interval(d))

    def epoch_seconds(self, t: exp.Expression) -> exp.Expression:
        """Seconds since 1970 as a number; only its monotonicity is relied upon (buckets)."""
        return exp.TimeToUnix(this=t)

    def truncate(self, t: exp.Expression, unit: str) -> exp.Expression:
        return exp.TimestampTrunc(this=t, unit=exp.var(unit))

    def extract(self, part: str, t: exp.Expression) -> exp.Expression:
        """`extract` as a whole number: where the seconds come with their fraction (30.123456),
        a cast to BIGINT would round up where the contract truncates."""
        value = exp.Extract(this=exp.var(part.upper()), expression=t)
        if part == "second" and self.fractional_seconds:
            return exp.Cast(this=exp.Floor(this=value), to=exp.DataType.build("BIGINT"))
        return value

    def modulo(self, a: exp.Expression, b: exp.Expression) -> exp.Expression:
        if self.mod_as_function:
            return exp.Anonymous(this="MOD", expressions=[a, b])
        return exp.Mod(this=a, expression=b)

    # ---- aggregation ----
    def ordered_list(
        self,
        value: exp.Expression,
        order: exp.Expression,
        condition: exp.Expression,
        element: ir.Type,
    ) -> exp.Expression:
        """The values of the rows meeting `condition`, ascending by `order`; NULL when none."""
        agg = exp.ArrayAgg(this=exp.Order(this=value, expressions=[exp.Ordered(this=order)]))
        return exp.Filter(this=agg, expression=exp.Where(this=condition))

    def empty_list(self, element: ir.Type) -> exp.Expression:
        return exp.Cast(this=exp.Array(expressions=[]), to=self.sql_type(ir.list_of(element)))

    def extreme(self, args: list[exp.Expression], largest: bool) -> exp.Expression:
        """GREATEST/LEAST of two or more values, skipping nulls: null only when all are null.

        duckdb, postgres, redshift and spark already skip nulls; snowflake has *_IGNORE_NULLS
        (sqlglot's `ignore_nulls`). Where one null argument makes the result null (bigquery,
        trino) the override puts the arguments in an array whose nulls are skipped, naming each
        argument once: a form that tests an argument for null and then uses it would double the
        SQL at each level of nesting.
        """
        cls = exp.Greatest if largest else exp.Least
        return cls(this=args[0], expressions=args[1:], ignore_nulls=True)

    def pick(self, e: exp.Expression, t: ir.Type, largest: bool = True) -> exp.Expression:
        """MAX/MIN that also works on booleans (postgres has no MAX(boolean))."""
        if t == ir.BOOL:
            return exp.LogicalOr(this=e) if largest else exp.LogicalAnd(this=e)
        return exp.Max(this=e) if largest else exp.Min(this=e)

    def round(self, x: exp.Expression, digits: exp.Expression | None, t: ir.Type) -> exp.Expression:
        """ROUND with halves away from zero of the exact binary value, as language.md promises."""
        return exp.Round(this=x, decimals=digits)


def register(cls: type[Dialect]) -> type[Dialect]:
    """Make `cls` what `get(cls.name)` returns. Subclasses register themselves when defined; a
    backend's dialect and an entry point's class come through here too. A later class of the
    same name replaces an earlier one, as a re-imported module's would."""
    if not (isinstance(cls, type) and issubclass(cls, Dialect)):
        raise UsageError(f"{cls!r} is not a subclass of {__name__}.Dialect", "E0006")
    if not cls.__dict__.get("name"):
        raise UsageError(
            f"dialect class {cls.__module__}.{cls.__qualname__} has no `name` of its own", "E0006"
        )
    if cls.__module__ != __name__:  # a plug-in's (the built-ins' are known and tested)
        _check_prints(cls)
    _CLASSES[cls.name] = cls
    return cls


def _check_prints(cls: type[Dialect]) -> None:
    """A class printing with a dialect sqlglot lacks is refused when registered, not when its
    first query is printed. Only for plug-ins: it imports sqlglot's dialect module."""
    import sqlglot

    try:
        sqlglot.Dialect.get_or_raise(cls.sqlglot_dialect or cls.name)
    except ValueError:
        raise UsageError(
            f"dialect class {cls.__module__}.{cls.__qualname__} prints with `"
            f"{cls.sqlglot_dialect or cls.name}`, which sqlglot does not know; set "
            "`sqlglot_dialect`",
            "E0006",
        ) from None


class DuckDB(Dialect):
    name = "duckdb"
    has_asof = True
    ordered_structs = True
    splits_by_entity = True

    def entity_bucket(self, keys: list[exp.Expression], buckets: int) -> exp.Expression:
        # hash() of several values hashes them together; UBIGINT, so the remainder is >= 0
        hashed = exp.Anonymous(this="HASH", expressions=keys)
        return exp.Mod(this=hashed, expression=exp.Literal.number(buckets))


class Postgres(Dialect):
    name = "postgres"
    positional_parameters = True
    fractional_seconds = True
    mod_as_function = True

    def round(self, x: exp.Expression, digits: exp.Expression | None, t: ir.Type) -> exp.Expression:
        if t != ir.FLOAT:
            return super().round(x, digits, t)
        # ROUND(double precision) rounds halves to even and ROUND(double precision, int) does
        # not exist; a cast to NUMERIC keeps 15 digits (0.49999999999999994 becomes 0.5).
        return exp.replace_placeholders(
            _PG_ROUND.copy(), x=x, d=digits if digits is not None else exp.Literal.number(0)
        )


class Spark(Dialect):
    name = "spark"
    fractional_seconds = True

    def epoch_seconds(self, t: exp.Expression) -> exp.Expression:
        return exp.UnixSeconds(this=t)

    def ordered_list(
        self,
        value: exp.Expression,
        order: exp.Expression,
        condition: exp.Expression,
        element: ir.Type,
    ) -> exp.Expression:
        # COLLECT_LIST takes no ORDER BY: collect (order, value) pairs, sort them, keep values.
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


class Snowflake(Dialect):
    name = "snowflake"


class BigQuery(Dialect):
    name = "bigquery"

    def epoch_seconds(self, t: exp.Expression) -> exp.Expression:
        # naive times are DATETIME there; UNIX_SECONDS wants a TIMESTAMP
        return exp.UnixSeconds(this=exp.Cast(this=t, to=exp.DataType.build("TIMESTAMPTZ")))

    def truncate(self, t: exp.Expression, unit: str) -> exp.Expression:
        # TIMESTAMP_TRUNC does not take a DATETIME. WEEK is WEEK(SUNDAY) there; the language's
        # weeks start on Monday, as ISO weeks do.
        return exp.DatetimeTrunc(this=t, unit=exp.var("ISOWEEK" if unit == "WEEK" else unit))

    def extreme(self, args: list[exp.Expression], largest: bool) -> exp.Expression:
        # MAX/MIN skip nulls and give null for no rows; the array literal coerces its elements
        # to their common supertype, which the compiler has already made explicit.
        item = exp.to_identifier(_ITEM)
        pick = exp.Max if largest else exp.Min
        values = exp.Unnest(
            expressions=[exp.Array(expressions=args)],
            alias=exp.TableAlias(columns=[item.copy()]),
        )
        return exp.Subquery(this=exp.select(pick(this=exp.column(item))).from_(values))


class Trino(Dialect):
    name = "trino"

    def extreme(self, args: list[exp.Expression], largest: bool) -> exp.Expression:
        # ARRAY_MAX is null as soon as one element is, and null for an empty array.
        item = exp.to_identifier(_ITEM)
        present = exp.Lambda(
            this=exp.column(item.copy()).is_(exp.null()).not_(), expressions=[item.copy()]
        )
        kept = exp.ArrayFilter(this=exp.Array(expressions=args), expression=present)
        return exp.ArrayMax(this=kept) if largest else exp.ArrayMin(this=kept)


class Databricks(Spark):
    name = "databricks"
    sqlglot_dialect = "databricks"  # not Spark's, which it would inherit


class Redshift(Dialect):
    """Postgres's syntax without the functions the Postgres dialect relies on (ARRAY_AGG,
    FLOAT8SEND) and with a driver that binds by name: it shares capabilities with `Postgres`
    rather than deriving from it, which would mean undoing most of it."""

    name = "redshift"
    fractional_seconds = True  # harmless if its seconds are already whole
    mod_as_function = True
    # ROUND(double, n) is Redshift's own, as the portable form prints it: its DECIMAL is
    # DECIMAL(18, 0), so a cast to it would drop the digits before ROUND could keep them.

    def ordered_list(
        self,
        value: exp.Expression,
        order: exp.Expression,
        condition: exp.Expression,
        element: ir.Type,
    ) -> exp.Expression:
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

    def empty_list(self, element: ir.Type) -> exp.Expression:
        return exp.Anonymous(this="JSON_PARSE", expressions=[exp.Literal.string("[]")])


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
    """The dialect called `name`: built in, registered, or an entry point loaded now."""
    cls = _CLASSES.get(name)
    if cls is None:
        cls = _load(name)
    return cls()


def names() -> tuple[str, ...]:
    """Every name `get` accepts: the built-in dialects, those registered since (a backend's),
    then the entry points not loaded yet (listed without importing them)."""
    return tuple(dict.fromkeys([*DIALECTS, *_CLASSES, *_plugins()]))


def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINTS)}


def _load(name: str) -> type[Dialect]:
    found = _plugins().get(name)
    if found is None:
        raise UsageError(f"unknown dialect `{name}`; choose one of {', '.join(names())}", "E0004")
    where = f"the `{name}` dialect plug-in ({found.value})"
    # Loading defines its classes, which register themselves: a plug-in that is then refused
    # must leave the registry as it found it (it could have replaced a built-in by name).
    before = dict(_CLASSES)
    try:
        try:
            cls = found.load()
        except Exception as e:  # any error of a third party's import is its, not fsc's
            why = f"{type(e).__name__}: {e}"
            raise UsageError(f"{where} cannot be loaded: {why}", "E0006") from None
        if not (isinstance(cls, type) and issubclass(cls, Dialect)):
            raise UsageError(f"{where} is not a subclass of {__name__}.Dialect", "E0006")
        if cls.name != name:
            raise UsageError(f"{where} is named `{cls.name}` by its class", "E0006")
        return register(cls)
    except UsageError:
        _CLASSES.clear()
        _CLASSES.update(before)
        raise
