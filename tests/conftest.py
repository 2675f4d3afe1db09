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
    urls = {"duckdb": "duckdb:///:memory:"}
    problems = {}
    try:
        import pgserver

        server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
        uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/path
        urls["postgres"] = uri.replace("postgresql://", "postgresql+psycopg://", 1)
    except Exception as e:  # noqa: BLE001 - any reason the server cannot start is reported
        problems["postgres"] = f"no Postgres server: {e}"
    try:
        from fsdsl.backends.spark import local_session

        local_session(str(tmp_path_factory.mktemp("spark")))
        urls["spark"] = "spark://local[2]"
    except Exception as e:  # noqa: BLE001
        problems["spark"] = f"no Spark: {type(e).__name__}: {e}"
    urls["_problems"] = problems
    return urls


def warehouse_url(urls: dict, backend: str) -> str:
    if backend not in urls:
        pytest.skip(urls["_problems"].get(backend, f"{backend} unavailable"))
    return urls[backend]
