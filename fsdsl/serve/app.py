"""The Starlette application of `fsc serve`: one per worker process.

Per request, only what depends on the request is done: parse the JSON (orjson), one
`online_features` call (its plan was made when the definitions were loaded: one Redis round
trip), build the response, encode it (orjson). Lookups run on the event loop itself: a local
Redis answers in tens of microseconds, far less than a hop to a thread pool and back costs,
and a worker's throughput is bounded by its one core either way (`--workers` adds cores).
What may take long — a push (the warehouse and a refresh), a reload, `/health` and
`/metrics` (which ask Redis for each view's state) — runs in a thread, so reads go on.

The definitions are one `Definitions` object, swapped whole on the event loop (SIGHUP or
`POST /reload`): a request sees the old one or the new one, never a mix; a reload whose files
do not check is refused and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from fsdsl.diagnostics import FeatError, UsageError, render_text
from fsdsl.serve import errors, feast
from fsdsl.serve.errors import HttpError
from fsdsl.serve.metrics import Metrics, render

log = logging.getLogger("fsdsl.serve")

MAX_BODY = 1 << 20
MAX_ENTITIES = 1000
# Feature lists (`"features": [...]`) get a plan each; a bounded number of them is kept.
ADHOC_PLANS = 256


@dataclass(frozen=True)
class ServeConfig:
    """What every worker is started with (inherited by forked workers, never sent anywhere)."""

    path: str
    online: str | None = None
    warehouse: str | None = None
    profile: str | None = None
    token: str | None = None
    max_body: int = MAX_BODY
    max_entities: int = MAX_ENTITIES
    metrics_dir: str = ""
    workers: int = 1


class Definitions:
    """One generation of loaded definitions: a `FeatureStore` with every service's plan made,
    and what `/health` reports of them. Made off the event loop; read by requests as is."""

    def __init__(self, config: ServeConfig):
        from fsdsl.online.fingerprint import fingerprint
        from fsdsl.store import FeatureStore

        self.store = FeatureStore(
            config.path, warehouse=config.warehouse, profile=config.profile, online=config.online
        )
        repo = self.store.repo
        self.pairs = {name: list(s.features) for name, s in repo.services.items()}
        for name in repo.services:
            self.store.plan(name)  # made once, here, never per request
        self.fingerprints = {name: fingerprint(v) for name, v in repo.views.items()}
        self.digest = _digest(repo.files)
        self.loaded_at = time.time()
        self._adhoc: OrderedDict[tuple, object] = OrderedDict()

    def adhoc_plan(self, refs: tuple[tuple[str, str], ...]):
        """The plan of a feature list, as if it were a service of these features (made once
        per distinct list, kept among the last ADHOC_PLANS)."""
        plan = self._adhoc.get(refs)
        if plan is not None:
            self._adhoc.move_to_end(refs)
            return plan
        import dataclasses

        from fsdsl import ir
        from fsdsl.diagnostics import Span
        from fsdsl.online.lookup import plan_service

        repo = self.store.repo
        seen: dict[str, str] = {}
        for view, name in refs:
            v = repo.views.get(view)
            if v is None or view in repo.links:
                raise HttpError(400, errors.UNKNOWN_FEATURE, f"no feature view `{view}`")
            if not any(f.name == name for f in v.features):
                raise HttpError(
                    400, errors.UNKNOWN_FEATURE, f"feature view `{view}` has no feature `{name}`"
                )
            if name in seen and seen[name] != view:
                raise HttpError(
                    400,
                    errors.UNKNOWN_FEATURE,
                    f"feature `{name}` is asked of views `{seen[name]}` and `{view}`; "
                    "ask for them through a service",
                )
            seen[name] = view
        key = "\x00features"  # never a service's name: the grammar allows none like it
        svc = ir.Service(key, tuple(dict.fromkeys(refs)), None, Span.unknown())
        plan = plan_service(dataclasses.replace(repo, services={key: svc}), key)
        self._adhoc[refs] = plan
        if len(self._adhoc) > ADHOC_PLANS:
            self._adhoc.popitem(last=False)
        return plan

    def close(self) -> None:
        self.store.close()


def _digest(files) -> str:
    """What the definitions were made from: a reload of the same bytes changes nothing."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\x00")
        try:
            h.update(Path(name).read_bytes())
        except OSError:
            h.update(b"\xff")
    return h.hexdigest()


@dataclass
class Server:
    """The state of one worker: its definitions (swapped whole), metrics and locks."""

    config: ServeConfig
    defs: Definitions
    metrics: Metrics
    push_lock: threading.Lock = field(default_factory=threading.Lock)
    reload_lock: asyncio.Lock | None = None
    loop: asyncio.AbstractEventLoop | None = None
    corrupt_seen: dict[int, int] = field(default_factory=dict)  # per store: reads counted

    # ---- access ----
    def authorize(self, request: Request, write: bool) -> None:
        token = self.config.token
        if token is None:
            if write:
                raise HttpError(
                    403,
                    errors.WRITES_DISABLED,
                    "push and reload need a token: start fsc serve with --token or "
                    "$FSC_SERVE_TOKEN",
                )
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        # compared in constant time, whatever was sent
        ok = hmac.compare_digest(value.strip().encode(), token.encode())
        if scheme.lower() != "bearer" or not ok:
            raise HttpError(
                401,
                errors.UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                {"www-authenticate": "Bearer"},
            )

    async def body(self, request: Request):
        """The JSON body, read up to the limit (413 past it, even without a Content-Length)."""
        limit = self.config.max_body
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(limit)  # refused before a byte of it is read
        chunks, size = [], 0
        async for chunk in request.stream():  # chunked: counted as it arrives
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        data = b"".join(chunks)
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise HttpError(400, errors.MALFORMED_JSON, f"malformed JSON body: {e}") from None

    # ---- reload ----
    async def reload(self) -> dict:
        """Load the definitions again, off the event loop, and swap them in whole; refused (the
        old ones keep serving) when the files do not check. One reload at a time."""
        assert self.reload_lock is not None
        async with self.reload_lock:
            try:
                new = await run_in_threadpool(Definitions, self.config)
            except FeatError as e:
                self.metrics.add("reloads_refused")
                lines = [render_text(d).splitlines()[0] for d in e.diagnostics]
                log.warning("reload refused, the definitions in use keep serving: %s", lines[0])
                raise HttpError(
                    422,
                    errors.RELOAD_REFUSED,
                    f"reload refused, the definitions in use keep serving: {'; '.join(lines)}",
                ) from None
            except UsageError as e:
                self.metrics.add("reloads_refused")
                raise HttpError(422, errors.RELOAD_REFUSED, f"reload refused: {e}") from None
            old = self.defs
            if new.digest == old.digest:
                new.close()
                return {"reloaded": False, "reason": "unchanged", **self.summary()}
            self.defs = new  # the swap: every later request reads the new definitions
            self.metrics.add("reloads")
            log.warning("definitions reloaded: %d services", len(new.pairs))
            await run_in_threadpool(self._retire, old)
            return {"reloaded": True, **self.summary()}

    def _retire(self, old: Definitions) -> None:
        with self.push_lock:  # a push in progress finishes with the store it started with
            old.close()

    def summary(self) -> dict:
        d = self.defs
        return {
            "services": sorted(d.pairs),
            "views": d.fingerprints,
            "loaded_at": _iso_epoch(d.loaded_at),
        }


def _too_large(limit: int) -> HttpError:
    return HttpError(413, errors.TOO_LARGE, f"request body over {limit:,} bytes")


def _iso_epoch(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None).isoformat() + "Z"


_JSON = "application/json"


def json_response(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(
        orjson.dumps(payload, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z),
        status,
        headers,
        _JSON,
    )


def error_response(e: HttpError) -> Response:
    return json_response(e.body(), e.status, e.headers)


def handled(fn):
    """Every error becomes one JSON answer: a caller's mistake 4xx, the store 503, a bug 500
    (logged in one line, its text never sent)."""

    async def endpoint(request: Request) -> Response:
        server: Server = request.app.state.server
        try:
            return await fn(server, request)
        except HttpError as e:
            if e.status == 503 and e.code in ("E0504", "E0505", "E0503"):
                server.metrics.add("online_unreachable")
            return error_response(e)
        except UsageError as e:
            return _usage(server, e)
        except Exception as e:  # noqa: BLE001 - a bug: one line in the log, none of it sent
            log.error("internal error in %s: %s", request.url.path, type(e).__name__)
            if os.environ.get("FSC_DEBUG"):
                log.exception("traceback (FSC_DEBUG)")
            return error_response(HttpError(500, errors.INTERNAL, "internal error"))

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


def _usage(server: Server, e: UsageError) -> Response:
    http = errors.from_usage(e)
    if http.code in ("E0504", "E0505", "E0503"):
        server.metrics.add("online_unreachable")
    return error_response(http)


# ---- endpoints ----
@handled
async def get_online_features(server: Server, request: Request) -> Response:
    """Feature values for a batch of entities (Feast's request and response)."""
    server.authorize(request, write=False)
    read = feast.parse_read(await server.body(request), server.config.max_entities)
    return json_response(serve_read(server, read))


def serve_read(server: Server, read: feast.Read) -> dict:
    from fsdsl.online.lookup import Looked, lookup_columns

    defs = server.defs  # one generation for the whole request
    rows = feast.rows_of(read.columns, read.rows)
    store = defs.store
    if read.service is not None:
        pairs = defs.pairs.get(read.service)
        if pairs is None:
            store.service_features(read.service)  # the library's own unknown-name error
        plan = store.plan(read.service)
    else:
        plan = defs.adhoc_plan(read.refs)
        pairs = list(dict.fromkeys(read.refs))
    served = lookup_columns(store.online(), plan, rows, True, True) if rows else Looked([])
    out = feast.response(read, pairs, plan.order, served)
    metrics = server.metrics
    metrics.add("entities_served", read.rows)
    if served.as_of and served.as_of[0] is not None:
        now = time.time()
        metrics.served(served.as_of[0].replace(tzinfo=dt.UTC).timestamp(), now)
    corrupt = store.online().corrupt_reads  # counted by the store, per store object
    if corrupt > server.corrupt_seen.get(id(store), 0):
        metrics.add("corrupt_reads", corrupt - server.corrupt_seen.get(id(store), 0))
        server.corrupt_seen[id(store)] = corrupt
    return out


@handled
async def push(server: Server, request: Request) -> Response:
    """Append rows to a source and update the online values they change (`store.push`)."""
    server.authorize(request, write=True)
    p = feast.parse_push(await server.body(request))
    result = await run_in_threadpool(_push, server, p)
    server.metrics.add("rows_pushed", result.rows)
    return json_response(result.to_dict())


def _push(server: Server, p: feast.Push):
    # one push at a time per worker: a push opens the warehouse for writing (DuckDB: one
    # writer per file; a push of another worker waits for the file, as `fsc push` does)
    with server.push_lock:
        return server.defs.store.push(p.source, p.rows, mode=p.mode, ids=p.ids)


@handled
async def reload(server: Server, request: Request) -> Response:
    """Load the definitions again; refused, with the old ones serving, when they do not check."""
    server.authorize(request, write=True)
    result = await server.reload()
    if server.config.workers > 1:
        # the other workers reload too: the supervisor forwards SIGHUP to every worker (this
        # one reloads again and finds nothing changed)
        import signal

        os.kill(os.getppid(), signal.SIGHUP)
    return json_response(result)


@handled
async def health(server: Server, request: Request) -> Response:
    """Redis reachable, definitions loaded, fingerprints served (200), else 503."""
    return json_response(*await run_in_threadpool(_health, server))


def _health(server: Server) -> tuple[dict, int]:
    defs = server.defs
    body: dict = {"status": "ok", "definitions": server.summary(), "online": "reachable"}
    served: dict = {}
    try:
        online = defs.store.online()
        for view, fp in defs.fingerprints.items():
            state = online.state(view)
            served[view] = {
                "fingerprint": state.get("fp"),
                "current": state.get("fp") == fp,
                "as_of": state.get("as_of"),
            }
    except UsageError as e:
        body["status"] = "unavailable"
        body["online"] = errors.from_usage(e).args[0]
        return body, 503
    body["served"] = served
    return body, 200


@handled
async def metrics(server: Server, request: Request) -> Response:
    """Prometheus text: requests, latencies, errors, freshness."""
    text = await run_in_threadpool(_metrics_text, server)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def _metrics_text(server: Server) -> str:
    defs = server.defs
    lag, up = [], 1.0
    try:
        online = defs.store.online()
        now = time.time()
        for view in defs.fingerprints:
            as_of = online.state(view).get("as_of")
            if as_of is not None:
                t = dt.datetime.fromisoformat(as_of)
                t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
                lag.append((f'view="{view}"', now - t.timestamp()))
    except UsageError:
        up = 0.0
    extra = {
        "fsc_serve_view_freshness_lag_seconds": (
            "gauge",
            "Now minus the as-of time of each view's values in the online store.",
            lag,
        ),
        "fsc_serve_online_up": (
            "gauge",
            "1 when the online store answered this scrape.",
            [("", up)],
        ),
        "fsc_serve_definitions_loaded_timestamp_seconds": (
            "gauge",
            "When this worker loaded the definitions it serves (Unix time).",
            [("", defs.loaded_at)],
        ),
    }
    return render(server.config.metrics_dir, extra)


async def openapi_json(request: Request) -> Response:
    from fsdsl.serve.openapi import document

    return json_response(document())


async def docs(request: Request) -> Response:
    from fsdsl.serve.openapi import PAGE

    return HTMLResponse(PAGE)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = errors.NO_ROUTE
    message = {404: "no such endpoint", 405: "method not allowed"}.get(exc.status_code, exc.detail)
    return error_response(HttpError(exc.status_code, code, message, dict(exc.headers or {})))


async def _crash(request: Request, exc: Exception) -> Response:
    log.error("internal error in %s: %s", request.url.path, type(exc).__name__)
    return error_response(HttpError(500, errors.INTERNAL, "internal error"))


class Measured:
    """Pure ASGI (no per-request objects of its own): counts and times every response."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        metrics = self.metrics
        status = 500

        async def sent(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.gauge_add("in_flight", 1)
        try:
            await self.app(scope, receive, sent)
        finally:
            metrics.gauge_add("in_flight", -1)
            metrics.observe(metrics.endpoint(scope["path"]), status, time.perf_counter() - started)


def build(config: ServeConfig, defs: Definitions | None = None) -> Measured:
    """The ASGI application of one worker (`defs`: definitions loaded before the fork)."""
    import contextlib

    server = Server(config, defs or Definitions(config), Metrics(config.metrics_dir))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        server.loop = asyncio.get_running_loop()
        server.reload_lock = asyncio.Lock()
        try:
            await run_in_threadpool(server.defs.store.online)  # connect before the first read
        except UsageError as e:
            log.warning("%s", errors.from_usage(e).args[0])
        yield
        server.defs.close()

    routes = [
        Route("/get-online-features", get_online_features, methods=["POST"]),
        Route("/push", push, methods=["POST"]),
        Route("/reload", reload, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )
    app.state.server = server
    return Measured(app, server.metrics)
