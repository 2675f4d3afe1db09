from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Hypothesis profiles. `ci` (CI runs with CI=true): derandomized, so a red run replays exactly
# by running it again, with no database to depend on (derandomize implies database=None), no
# wall-clock deadline on shared runners, and every failure printing its `@reproduce_failure`.
# `dev`: random exploration that remembers its failures in .hypothesis/ (at the repository
# root, whatever the working directory) and prints the same reproducer.
# Loaded here, at conftest import, before any test module: a test's own `@settings(...)` takes
# every value it does not name from the profile active when it is decorated, so tests that set
# only max_examples / deadline / health checks still inherit derandomize and print_blob.
# `pytest --hypothesis-profile=NAME` still overrides (the plugin loads it after this file).
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    database=DirectoryBasedExampleDatabase(ROOT / ".hypothesis" / "examples"),
    print_blob=True,
)
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
settings.load_profile("ci" if IN_CI else "dev")

EXAMPLE_FEAT = """
entity user {
  key user_id: string
}

source orders {
  table "orders"
  timestamp event_timestamp
  created created_at
  columns {
    order_id: string
    user_id: string
    amount: float
    status: string
    event_timestamp: timestamp
    created_at: timestamp
  }
}
"""


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def redis_urls(tmp_path_factory):
    """Every real Redis the tests can reach: always the embedded binary, plus CI's server."""
    from redis_servers import Server, external_url

    server = Server(tmp_path_factory.mktemp("redis")).start()
    urls = {"embedded": server.url}
    if external_url():
        urls["debian"] = external_url()
    yield urls
    server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """CI sets FSDSL_REQUIRE_SERVERS=1: a test skipped for a missing server is then a failure."""
    outcome = yield
    report = outcome.get_result()
    import os

    if (
        os.environ.get("FSDSL_REQUIRE_SERVERS")
        and report.skipped
        and not hasattr(report, "wasxfail")  # an expected failure ran; it is no skip
        and call.when in ("setup", "call")
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped while FSDSL_REQUIRE_SERVERS is set: {report.longrepr}"


@pytest.fixture(scope="session")
def warehouse_urls(tmp_path_factory):
    """URL of every warehouse that can run here; a missing one is absent (tests skip)."""
    return Warehouses(tmp_path_factory)


class Warehouses:
    """The warehouses of this test process, each started on first use: a worker that runs no
    Spark test starts no JVM (under xdist, the Spark tests share one worker, see below)."""

    def __init__(self, tmp_path_factory) -> None:
        self._tmp = tmp_path_factory
        self._urls = {"duckdb": "duckdb:///:memory:"}
        self._problems: dict[str, str] = {}

    def _start(self, backend: str) -> None:
        if backend in self._urls or backend in self._problems:
            return
        try:
            if backend == "postgres":
                import pgserver

                server = pgserver.get_server(self._tmp.mktemp("pg"), cleanup_mode="stop")
                uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/path
                self._urls[backend] = uri.replace("postgresql://", "postgresql+psycopg://", 1)
            elif backend == "spark":
                from fsdsl.backends.spark import local_session

                # a test JVM lives minutes and plans many small queries: the C2 compiler and
                # parallel GC threads cost more CPU than they save (about 30% of Spark's CPU,
                # taken from the other xdist worker); the same queries, the same results
                os.environ.setdefault(
                    "SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
                )
                local_session(str(self._tmp.mktemp("spark")))
                self._urls[backend] = "spark://local[2]"
            else:
                self._problems[backend] = f"{backend} unavailable"
        except Exception as e:  # noqa: BLE001 - any reason the server cannot start is reported
            what = "no Postgres server" if backend == "postgres" else "no Spark"
            self._problems[backend] = f"{what}: {type(e).__name__}: {e}"

    def __contains__(self, backend: str) -> bool:
        self._start(backend)
        return backend in self._urls

    def __getitem__(self, backend: str) -> str:
        self._start(backend)
        return self._urls[backend]

    def problem(self, backend: str) -> str:
        self._start(backend)
        return self._problems.get(backend, f"{backend} unavailable")


def warehouse_url(urls: Warehouses, backend: str) -> str:
    if backend not in urls:
        pytest.skip(urls.problem(backend))
    return urls[backend]


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent with -p no:xdist
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, except that every Spark test (`spark` in its name or parameters) goes
    to the same worker: one JVM planning queries beats two fighting over the same two cores,
    each paying Spark's start-up. The rest stays grouped by file, so a module's tests keep
    sharing their module fixtures and running in order, as they do in a run of that file alone.
    Any other `--dist` is xdist's own."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SparkOnOneWorker(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            test = nodeid.split("::", 1)[-1]
            return "spark" if "spark" in test.lower() else super()._split_scope(nodeid)

    return SparkOnOneWorker(config, log)
