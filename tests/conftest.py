from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

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
        and call.when in ("setup", "call")
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped while FSDSL_REQUIRE_SERVERS is set: {report.longrepr}"
