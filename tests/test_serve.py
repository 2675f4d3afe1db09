"""`fsc serve` as a real process on a free loopback port, over real HTTP (httpx), against real
Redis servers: values equal `fsc get`; Feast's request shapes work; the token, the body and
entity limits hold; caller mistakes get one JSON error with a 4xx; Redis stopped mid-load gives
503 and recovery; a broken reload keeps the old definitions serving; SIGTERM drains.

Each server is started the way a user starts it (`python -m fsdsl.cli serve ... --port 0`),
its announced port read from stderr; everything it logs is kept and checked for secrets."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import socket
import threading
import time

import httpx
import pytest
from projects import example_project
from redis_servers import Server
from serving import TOKEN, Served
from typer.testing import CliRunner

from fsdsl import FeatureStore
from fsdsl.cli import app

AT = dt.datetime(2024, 5, 1)
PASSWORD = "s3cret-redis-pass"
VIEWS = ("user_orders", "user_browsing", "user_category_browsing")
runner = CliRunner(env={"COLUMNS": "120"})


def auth(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def error_of(r: httpx.Response, status: int, code: str) -> str:
    """The one-line JSON error of a response: its status, code, and no traceback."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body["error"]["message"]


def columns(r: httpx.Response) -> dict[str, list]:
    """A Feast response as {name: values}."""
    assert r.status_code == 200, r.text
    body = r.json()
    names = body["metadata"]["feature_names"]
    return {n: res["values"] for n, res in zip(names, body["results"], strict=True)}


def _normal(value):
    """`fsc get` prints datetimes with str() (a space), the server as ISO 8601 with Z."""
    if isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?", value
    ):
        return dt.datetime.fromisoformat(value.rstrip("Z"))
    return value


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The example project, refreshed into a Redis of its own that wants a password."""
    tmp = tmp_path_factory.mktemp("serve")
    root = example_project(tmp, users=200, orders=3000, page_views=3000, labels=10, seed=3)
    redis = Server(tmp / "redis", password=PASSWORD).start()
    with FeatureStore(root / "definitions", online=redis.url) as store:
        store.run(AT, views=list(VIEWS))  # the example's others need tables of their own
    yield root, redis
    redis.stop()


@pytest.fixture(scope="module")
def server(project):
    root, redis = project
    served = Served(root / "definitions", redis.url, token=TOKEN)
    yield served
    assert served.stop() == 0
    assert_no_secrets("".join(served.log), redis)


def assert_no_secrets(text: str, redis: Server) -> None:
    assert PASSWORD not in text and str(redis.sock) not in text, text


KEYS = ["u000042", "u000007", "u000123", "never-seen"]


@pytest.mark.parametrize(
    ("service", "extra"),
    [("churn_model", {}), ("recommender", {"category": ["shoes", "Shoes", "hats", "shoes"]})],
)
def test_values_equal_fsc_get(project, server, service, extra):
    root, redis = project
    r = server.read({"feature_service": service, "entities": {"user_id": KEYS, **extra}})
    got = columns(r)
    body = r.json()
    view_of = {f: v for v, f in FeatureStore(root / "definitions").service_features(service)}
    for i, key in enumerate(KEYS):
        args = ["get", str(root / "definitions"), "-s", service, f"user_id={key}"]
        args += [f"{k}={v[i]}" for k, v in extra.items()]
        result = runner.invoke(app, [*args, "--online", redis.url])
        assert result.exit_code == 0, result.output
        expected = json.loads(result.output)
        for name, value in expected.items():
            if name in ("__status", "_as_of_views"):
                continue
            if name == "_as_of":
                assert body["metadata"]["_as_of"][i] == value + "Z"
                continue
            assert _normal(got[name][i]) == _normal(value), (key, name)
        names = body["metadata"]["feature_names"]
        for res, name in zip(body["results"], names, strict=True):
            if name not in view_of:  # an entity column
                continue
            said = expected["__status"][view_of[name]]
            want = {"ok": ("PRESENT", "NULL_VALUE"), "missing": ("NOT_FOUND",)}[said]
            assert res["statuses"][i] in want, (key, name, res["statuses"][i])


def test_feast_request_shapes(project, server):
    """The shapes of Feast's docs and of its `remote` online store client: a JSON text posted
    without a content type, `features` as "view:feature", columns of entities; the response
    column-major with the entity column first, statuses, and timestamps its client parses."""
    feast_body = json.dumps(
        {
            "features": ["user_orders:spend_30d", "user_orders:orders_7d"],
            "entities": {"user_id": ["u000042", "never-seen"]},
        }
    )
    r = server.client.post("/get-online-features", content=feast_body, headers=auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["feature_names"] == ["user_id", "spend_30d", "orders_7d"]
    assert body["results"][0]["values"] == ["u000042", "never-seen"]
    assert body["results"][0]["statuses"] == ["PRESENT", "PRESENT"]
    assert body["results"][1]["statuses"][1] == "NOT_FOUND"
    # Feast's client: datetime.fromisoformat(event_ts.replace("Z", "+00:00"))
    ts = body["results"][1]["event_timestamps"][0]
    assert dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) == AT.replace(tzinfo=dt.UTC)
    service = server.read({"feature_service": "fraud_model", "entities": {"user_id": ["u000042"]}})
    full = server.read(
        {
            "feature_service": "fraud_model",
            "entities": {"user_id": ["u000042"]},
            "full_feature_names": True,
        }
    )
    assert columns(full)["user_orders__spend_30d"] == columns(service)["spend_30d"]
    assert columns(service)["spend_30d"] == columns(r)["spend_30d"][:1]
    # rows instead of columns, as the old Feast SDK's entity_rows
    rows = server.read({"feature_service": "fraud_model", "entities": [{"user_id": "u000042"}]})
    assert columns(rows) == columns(service)


def test_token_required_where_set(project, server):
    body = {"feature_service": "fraud_model", "entities": {"user_id": ["u000042"]}}
    error_of(server.read(body, token=None), 401, "E0605")
    r = server.read(body, token="wrong")
    error_of(r, 401, "E0605")
    assert r.headers["www-authenticate"] == "Bearer"
    assert server.read(body).status_code == 200
    error_of(server.client.post("/push", json={"source": "orders", "rows": []}), 401, "E0605")
    error_of(server.client.post("/reload"), 401, "E0605")
    assert server.client.get("/health").status_code == 200  # probes need no token


def test_limits(server):
    keys = [f"u{i:06d}" for i in range(1000)]
    r = server.read({"feature_service": "fraud_model", "entities": {"user_id": keys}})
    assert len(columns(r)["spend_30d"]) == 1000
    r = server.read({"feature_service": "fraud_model", "entities": {"user_id": [*keys, "x"]}})
    assert "1,001 entities" in error_of(r, 400, "E0603")
    big = b'{"feature_service": "fraud_model", "entities": {"user_id": ["' + b"x" * (1 << 20)
    big += b'"]}}'
    r = server.client.post("/get-online-features", content=big, headers=auth())
    error_of(r, 413, "E0604")

    def chunks():  # no Content-Length: the limit holds on what is actually sent
        yield big[: 1 << 19]
        yield big[1 << 19 :]

    r = server.client.post("/get-online-features", content=chunks(), headers=auth())
    error_of(r, 413, "E0604")
    # a Content-Length over the limit is refused at once, before any of the body is sent
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"POST /get-online-features HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Length: {8 << 20}\r\n\r\n".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")


def test_caller_mistakes_get_clear_4xx(server):
    r = server.client.post("/get-online-features", content=b'{"entities": ', headers=auth())
    assert "malformed JSON" in error_of(r, 400, "E0601")
    r = server.read({"feature_service": "no_such_model", "entities": {"user_id": ["u1"]}})
    assert "no_such_model" in error_of(r, 400, "E0005")
    r = server.read({"features": ["user_orders:nope"], "entities": {"user_id": ["u1"]}})
    assert "has no feature `nope`" in error_of(r, 400, "E0607")
    r = server.read({"feature_service": "fraud_model", "entities": {"customer": ["u1"]}})
    assert "user_id" in error_of(r, 400, "E0402")
    r = server.read({"entities": {"user_id": ["u1"]}})
    error_of(r, 400, "E0602")
    r = server.read({"feature_service": "fraud_model", "entities": {"user_id": ["a"], "x": []}})
    error_of(r, 400, "E0602")
    error_of(server.client.get("/get-online-features", headers=auth()), 405, "E0610")
    error_of(server.client.get("/nowhere"), 404, "E0610")


def test_push_over_http(project, server):
    root, _ = project
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    row = {
        "view_id": "pv-http-1",
        "visitor_id": "u_http",
        "product_id": "p1",
        "category": "Shoes",
        "viewed_at": now.isoformat(),
    }
    r = server.client.post("/push", json={"source": "page_views", "rows": [row]}, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 1 and r.json()["_as_of"]
    # Feast's shape: push_source_name, df as columns, to
    feast_df = {k: [v] for k, v in {**row, "view_id": "pv-http-2"}.items()}
    r = server.client.post(
        "/push",
        json={"push_source_name": "page_views", "df": feast_df, "to": "online_and_offline"},
        headers=auth(),
    )
    assert r.status_code == 200, r.text
    got = columns(
        server.read(
            {
                "feature_service": "recommender",
                "entities": {"user_id": ["u_http"], "category": ["shoes"]},
            }
        )
    )
    assert got["views_1h"] == [2] and got["recent_products"] == [["p1", "p1"]]
    bad = {**row, "dwell_seconds": "slow"}
    r = server.client.post("/push", json={"source": "page_views", "rows": [bad]}, headers=auth())
    assert "row 0" in error_of(r, 400, "E0520")
    r = server.client.post("/push", json={"source": "nope", "rows": [row]}, headers=auth())
    error_of(r, 400, "E0524")


def test_health_metrics_openapi_docs(project, server):
    root, _ = project
    # what the metrics below count, made here: the test does not depend on the others' order
    # (under xdist a module's tests are shared between workers, each with its own server)
    body = {"feature_service": "fraud_model", "entities": {"user_id": ["u000042"]}}
    assert server.read(body).status_code == 200
    assert server.read({"feature_service": "fraud_model"}).status_code == 400
    health = server.client.get("/health").json()
    assert health["status"] == "ok" and health["online"] == "reachable"
    assert all(health["served"][v]["current"] for v in VIEWS), health
    text = server.client.get("/metrics").text
    assert re.search(
        r'^fsc_serve_requests_total\{endpoint="/get-online-features",status="200"\} [1-9]',
        text,
        re.M,
    ), text
    assert 'fsc_serve_requests_total{endpoint="/get-online-features",status="400"}' in text
    assert re.search(
        r'^fsc_serve_errors_total\{endpoint="/get-online-features",kind="4xx"\}', text, re.M
    )
    assert 'fsc_serve_request_seconds_bucket{endpoint="/get-online-features",le="0.002"}' in text
    assert re.search(r'^fsc_serve_view_freshness_lag_seconds\{view="user_orders"\} \d', text, re.M)
    assert re.search(r"^fsc_serve_freshness_lag_seconds_count [1-9]", text, re.M)
    assert "fsc_serve_online_up 1" in text
    doc = server.client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/get-online-features" in doc["paths"]
    page = server.client.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text
    # offline: nothing is loaded from elsewhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text)
    assert "http://" not in page.text and "https://" not in page.text


def test_reload_with_a_broken_feat_keeps_the_old_definitions(project, server):
    root, _ = project
    body = {"feature_service": "fraud_model", "entities": {"user_id": ["u000042"]}}
    before = columns(server.read(body))
    r = server.client.post("/reload", headers=auth())
    assert r.status_code == 200 and r.json()["reloaded"] is False  # nothing changed
    extra = root / "definitions" / "extra.feat"
    try:
        extra.write_text("service broken {\n  features user_orders.no_such_feature\n}\n")
        r = server.client.post("/reload", headers=auth())
        message = error_of(r, 422, "E0609")
        assert "extra.feat:2:" in message and "no_such_feature" in message
        assert columns(server.read(body)) == before  # the old definitions serve
        server.proc.send_signal(signal.SIGHUP)  # refused the same way
        deadline = time.monotonic() + 10
        while "fsc_serve_reloads_refused_total 2" not in server.client.get("/metrics").text:
            assert time.monotonic() < deadline, server.client.get("/metrics").text
            time.sleep(0.05)
        assert columns(server.read(body)) == before
        extra.write_text("service spend_only {\n  features user_orders.spend_30d\n}\n")
        r = server.client.post("/reload", headers=auth())
        assert r.status_code == 200 and r.json()["reloaded"] is True, r.text
        assert "spend_only" in r.json()["services"]
        new = server.read({"feature_service": "spend_only", "entities": {"user_id": ["u000042"]}})
        assert columns(new)["spend_30d"] == before["spend_30d"]
    finally:
        extra.unlink(missing_ok=True)
    assert server.client.post("/reload", headers=auth()).json()["reloaded"] is True


def test_redis_stopped_mid_load_gives_503_then_recovers(project, tmp_path):
    """A server without a token (reads open, push and reload off) on a Redis that is killed
    while requests flow, then started again on the same files."""
    root, _ = project
    redis = Server(tmp_path / "redis", password=PASSWORD).start()
    with FeatureStore(root / "definitions", online=redis.url) as store:
        store.run(AT, views=["user_orders"])
    served = Served(root / "definitions", redis.url)
    body = {"feature_service": "fraud_model", "entities": {"user_id": ["u000042"]}}
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=served.url, timeout=10) as c:
            while not stop.is_set():
                r = c.post("/get-online-features", json=body)
                seen.append((r.status_code, r.text))
                time.sleep(0.002)

    thread = threading.Thread(target=load)
    try:
        error_of(served.client.post("/push", json={}), 403, "E0606")
        error_of(served.client.post("/reload"), 403, "E0606")
        thread.start()
        wait_for(lambda: any(s == 200 for s, _ in seen))
        redis.kill()
        wait_for(lambda: any(s == 503 for s, _ in seen))
        down = [t for s, t in seen if s == 503]
        assert "unreachable" in json.loads(down[0])["error"]["message"]
        health = served.client.get("/health")
        assert health.status_code == 503 and health.json()["online"].startswith("the online")
        metrics = served.client.get("/metrics").text
        assert "fsc_serve_online_up 0" in metrics
        assert re.search(r"^fsc_serve_online_unreachable_total [1-9]", metrics, re.M)
        redis.start()
        count = len(seen)
        wait_for(lambda: any(s == 200 for s, _ in seen[count:]))
        assert served.client.get("/health").status_code == 200
        assert {s for s, _ in seen} <= {200, 503}, {s for s, _ in seen}
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(15)
        code = served.stop()
        redis.stop()
    assert code == 0
    everything = "".join(served.log) + "".join(t for _, t in seen)
    assert_no_secrets(everything, redis)


def wait_for(check, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sigterm_drains_in_flight_requests(project):
    """Two workers; a request half sent when SIGTERM arrives is still answered, then every
    process exits 0 and the port is closed."""
    root, redis = project
    served = Served(root / "definitions", redis.url, "--workers", "2")
    host, port = served.url.removeprefix("http://").split(":")
    body = json.dumps({"feature_service": "fraud_model", "entities": {"user_id": ["u000042"]}})
    head = (
        f"POST /get-online-features HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    assert {served.client.get("/health").status_code for _ in range(4)} == {200}
    sock = socket.create_connection((host, int(port)))
    try:
        sock.sendall(head + body[:10].encode())
        time.sleep(0.3)  # the worker has read the headers: the request is in flight
        served.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        sock.sendall(body[10:].encode())
        sock.settimeout(20)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    finally:
        sock.close()
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK", answer[:300]
    payload = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert payload["metadata"]["feature_names"] == ["user_id", "spend_30d", "orders_7d"]
    assert served.proc.wait(40) == 0, "".join(served.log)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()
