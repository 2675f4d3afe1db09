"""Redis as the online store: layout, run state, batched writes and one-round-trip lookups.

Layout (one namespace per view, definition fingerprint and full-refresh generation):

    fsdsl:state:{view}       hash: ns, fp, as_of, watermark, refreshed_at  (what is serving)
    fsdsl:v:{ns}:{key}       hash: one field per feature (nulls absent) + "__", the checksum
    fsdsl:empty:{ns}         hash: the values of an entity with no visible event (+ "__")
    fsdsl:repair:{ns}        set: keys whose hash failed its checksum when read (`checksum.py`),
                             which the next run rewrites
    fsdsl:agg:{ns}           hash: the aggregate state of every entity (Arrow IPC, in parts),
                             what the next incremental run merges new events into
    fsdsl:lock:{view}        a run in progress: "host:pid:owner", held (and renewed) by that
                             run only — see `runlock.py`

A full refresh (first run, `--full`, or a changed definition) writes a new namespace and switches
`state` to it only when every write succeeded; incremental runs write in place and advance
`state` last. A lookup is one round trip reading the entities' hashes from the namespace it
believes is serving (cached for STATE_TTL); past that, `state` is read in the same pipeline and,
if it names another namespace or definition, the cache is renewed and the read repeated, so
two definitions are never mixed. Every hash read is checked against its checksum; a damaged
one is logged, counted (`corrupt_reads`), served as missing and queued for the next run.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any
from zlib import crc32

from fsdsl.diagnostics import UsageError
from fsdsl.online.checksum import MARKER, fields_with_checksum, verified

log = logging.getLogger(__name__)
_MARKER = MARKER.encode()

PREFIX = "fsdsl"
LOCK_SECONDS = 120.0
# Reaching the store is quick or it is not happening: a refused or silent server is reported
# within about a second, in one line, never after redis-py's default retries with backoff.
CONNECT_SECONDS = 1.0
# Compare-and-renew / compare-and-delete / compare-and-replace of a lock: atomic, so a run
# never extends, removes or takes over a lock another run acquired in the meantime.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# A reader trusts the serving namespace it cached for this long; a namespace replaced by a full
# refresh is removed only after RETIRE_AFTER, so no reader ever reads a removed namespace.
STATE_TTL = 1.0
RETIRE_AFTER = 5.0
LAYOUT = 2  # how entity hashes are stored (2: with a checksum); part of every fingerprint
AGG_PART = 64 << 20  # a Redis value may hold 512 MB; keep each part well below


def redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


class OnlineStore:
    # Hashes read whose checksum failed, since this object was made; and a switch for the
    # benchmark that measures what checking costs (never off in serving).
    corrupt_reads: int = 0
    verify_checksums: bool = True

    def __init__(self, url: str):
        import redis

        self.url = url
        scheme = url.split(":", 1)[0].lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise UsageError(
                f"unknown online store URL `{redacted(url)}`; use redis://host:port, "
                "rediss://... or unix:///path.sock",
                "E0502",
            )
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        kwargs: dict[str, Any] = {
            "socket_connect_timeout": CONNECT_SECONDS,
            # a long Redis command is a slow server; a long warehouse query holds no socket
            "socket_timeout": 60,
            "health_check_interval": 0,
            # no retries: a dead store fails now (a run is rerun, a lookup is retried by its
            # caller), and a replayed write is never sent twice behind our back
            "retry": Retry(NoBackoff(), 0),
        }
        if not urllib.parse.urlsplit(url).password and os.environ.get("FSC_REDIS_PASSWORD"):
            kwargs["password"] = os.environ["FSC_REDIS_PASSWORD"]
        self._kwargs = kwargs
        try:
            self.client = redis.Redis.from_url(url, **kwargs)
        except ValueError as e:
            raise UsageError(f"bad online store URL `{redacted(url)}`: {e}", "E0502") from None
        # (view, fields) -> (fp, ns, encoded empty row, checked at): what is serving
        self._cache: dict[tuple, tuple] = {}
        self.lock_seconds = LOCK_SECONDS
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        self._replace = self.client.register_script(_REPLACE)

    # ---- errors ----
    def check(self) -> None:
        """Fail early, with one line, when the store is unreachable or refuses us: a server
        that accepts the connection but does not answer is given CONNECT_SECONDS too, not the
        socket timeout of normal operation."""
        import redis

        # a client of its own: the handshake (HELLO, AUTH, CLIENT SETINFO) is read under the
        # socket timeout too, which must stay long for normal operation
        probe = redis.Redis.from_url(
            self.url, **{**self._kwargs, "socket_timeout": CONNECT_SECONDS}
        )
        try:
            with self.errors():
                probe.ping()
        finally:
            probe.close()

    def errors(self):
        return _RedisErrors(self.url)

    # ---- state ----
    def state(self, view: str) -> dict[str, str]:
        with self.errors():
            raw = self.client.hgetall(f"{PREFIX}:state:{view}")
        return {k.decode(): v.decode() for k, v in raw.items()}

    def all_states(self) -> dict[str, dict[str, str]]:
        with self.errors():
            keys = list(self.client.scan_iter(match=f"{PREFIX}:state:*", count=1000))
        return {k.decode().split(":", 2)[2]: self.state(k.decode().split(":", 2)[2]) for k in keys}

    def set_state(
        self,
        view: str,
        state: dict[str, str],
        aggregates: bytes | None = None,
        owner: str | None = None,
    ) -> None:
        """Advance what serves; with `aggregates`, replace the namespace's aggregate state in
        the same transaction, so that the state always matches the as-of time it is for.

        With `owner`, only while that run holds the view's lock (checked under WATCH, so a
        lock lost between the check and EXEC aborts the transaction): raises LockLost."""
        import redis

        lock = f"{PREFIX}:lock:{view}"
        with self.errors(), self.client.pipeline(transaction=True) as pipe:
            for _attempt in range(5):
                if owner is not None:
                    pipe.watch(lock)
                    if pipe.get(lock) != _lock_value(owner).encode():
                        raise LockLost(view)
                    pipe.multi()
                if aggregates is not None:
                    key = f"{PREFIX}:agg:{state['ns']}"
                    pipe.delete(key)
                    parts = [
                        aggregates[i : i + AGG_PART] for i in range(0, len(aggregates), AGG_PART)
                    ]
                    pipe.hset(key, mapping={f"{i:06d}": p for i, p in enumerate(parts or [b""])})
                pipe.hset(f"{PREFIX}:state:{view}", mapping=state)
                try:
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue  # touched by our own renewal, or lost: the next check tells
            raise LockLost(view)

    def read_aggregates(self, ns: str) -> bytes | None:
        """The aggregate state `set_state` stored for namespace `ns` (None when absent)."""
        with self.errors():
            raw = self.client.hgetall(f"{PREFIX}:agg:{ns}")
        if not raw:
            return None
        return b"".join(raw[k] for k in sorted(raw))

    def lock(self, view: str, owner: str, seconds: float | None = None) -> bool:
        """Take the view's run lock for `seconds` (default `lock_seconds`). Its value names
        host and process, so a lock left by a run that died on this machine is taken over at
        once; one left elsewhere expires (a live run keeps renewing it with `keep_lock`)."""
        key = f"{PREFIX}:lock:{view}"
        value = _lock_value(owner)
        ms = _millis(self.lock_seconds if seconds is None else seconds)
        with self.errors():
            if self.client.set(key, value, nx=True, px=ms):
                return True
            held = self.client.get(key) or b""
            host, _, rest = held.decode(errors="replace").partition(":")
            pid = rest.partition(":")[0]
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                # replaced only if it still is that dead run's lock
                return bool(self._replace(keys=[key], args=[held, value, ms]))
            return False

    def keep_lock(self, view: str, owner: str, seconds: float | None = None) -> bool:
        """Extend the lock if `owner` still holds it; False when it expired or is another's."""
        ms = _millis(self.lock_seconds if seconds is None else seconds)
        with self.errors():
            return bool(self._renew(keys=[f"{PREFIX}:lock:{view}"], args=[_lock_value(owner), ms]))

    def unlock(self, view: str, owner: str) -> bool:
        """Release the lock if `owner` holds it (never another run's); True if released."""
        with self.errors():
            return bool(self._release(keys=[f"{PREFIX}:lock:{view}"], args=[_lock_value(owner)]))

    # ---- writes ----
    @staticmethod
    def entity_key(ns: str, key_text: str) -> str:
        return f"{PREFIX}:v:{ns}:{key_text}"

    def write_empty(self, ns: str, fields: dict[str, str]) -> None:
        key = f"{PREFIX}:empty:{ns}"
        with self.errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping=fields_with_checksum(key, fields))
            pipe.execute()

    def read_empty(self, ns: str) -> dict[str, str] | None:
        """The encoded empty values of a namespace, as `write_empty` stored them; None when
        they are absent or fail their checksum (the run then writes them again)."""
        empty = self._read_empty(ns)
        if empty is None:
            return None
        return {k.decode(): v.decode() for k, v in empty.items()}

    def _read_empty(self, ns: str) -> dict[bytes, bytes] | None:
        key = f"{PREFIX}:empty:{ns}"
        with self.errors():
            stored = self.client.hgetall(key)
        empty = verified(crc32(key.encode()), stored) if stored else None
        if empty is None:
            self.corrupt_reads += 1
            log.warning("the empty values of namespace %s fail their checksum", ns)
        return empty

    def write_batch(
        self,
        ns: str,
        puts: Iterable[tuple[str, dict[str, str]]],
        deletes: Iterable[str],
        fresh: bool = False,
    ) -> None:
        """Replace the hashes of `puts`, remove those of `deletes`.

        In a serving namespace (`fresh=False`) a batch is one MULTI/EXEC and each hash is
        deleted before it is written, so a reader never sees an entity half-written or with a
        stale field. A fresh namespace is not served until the run switches to it: plain
        HSETs, pipelined, are enough."""
        with self.errors():
            pipe = self.client.pipeline(transaction=not fresh)
            for key_text, fields in puts:
                key = self.entity_key(ns, key_text)
                if not fresh:
                    pipe.delete(key)
                pipe.hset(key, mapping=fields_with_checksum(key, fields))
            for key_text in deletes:
                pipe.delete(self.entity_key(ns, key_text))
            pipe.execute()

    def send_commands(self, buffer: bytes, count: int, transaction: bool) -> None:
        """Send `count` commands already encoded in RESP (see `resp.py`) in one write, as one
        MULTI/EXEC with `transaction`, and read every reply (an error reply raises)."""
        from fsdsl.online.resp import command

        if not count:
            return
        if transaction:
            buffer = command("MULTI") + buffer + command("EXEC")
        pool = self.client.connection_pool
        with self.errors():
            conn = pool.get_connection()
            try:
                conn.send_packed_command([buffer], check_health=False)
                replies = count + 2 if transaction else count
                for _ in range(replies):
                    conn.read_response()
            except BaseException:
                conn.disconnect()  # replies may be left unread: never reuse it
                raise
            finally:
                pool.release(conn)

    def retire_namespace(self, ns: str) -> None:
        with self.errors():
            self.client.hset(f"{PREFIX}:retired", ns, str(time.time()))

    def drop_retired(self, wait: bool = False) -> int:
        """Remove the namespaces retired more than RETIRE_AFTER seconds ago (all of them, after
        waiting, with `wait`)."""
        with self.errors():
            retired = {
                k.decode(): float(v) for k, v in self.client.hgetall(f"{PREFIX}:retired").items()
            }
        if wait and retired:
            time.sleep(max(0.0, RETIRE_AFTER - (time.time() - max(retired.values()))))
        removed = 0
        for ns, when in retired.items():
            if time.time() - when >= RETIRE_AFTER:
                removed += self.drop_namespace(ns)
                with self.errors():
                    self.client.hdel(f"{PREFIX}:retired", ns)
        return removed

    def drop_namespace(self, ns: str, batch: int = 5000) -> int:
        """Remove a namespace that no longer serves (after a switch)."""
        removed = 0
        with self.errors():
            pipe = self.client.pipeline(transaction=False)
            for key in self.client.scan_iter(match=f"{PREFIX}:v:{_glob(ns)}:*", count=batch):
                pipe.unlink(key)
                removed += 1
                if removed % batch == 0:
                    pipe.execute()
            pipe.unlink(f"{PREFIX}:empty:{ns}")
            pipe.unlink(f"{PREFIX}:agg:{ns}")
            pipe.unlink(f"{PREFIX}:repair:{ns}")
            pipe.execute()
        return removed

    def sample_keys(self, ns: str, n: int) -> list[str]:
        out = []
        prefix = f"{PREFIX}:v:{ns}:"
        with self.errors():
            for key in self.client.scan_iter(match=f"{PREFIX}:v:{_glob(ns)}:*", count=1000):
                out.append(key.decode()[len(prefix) :])
                if len(out) >= n:
                    break
        return out

    def repairs(self, ns: str) -> list[str]:
        """The keys of namespace `ns` that readers found damaged, for the run to rewrite."""
        with self.errors():
            return sorted(k.decode() for k in self.client.smembers(f"{PREFIX}:repair:{ns}"))

    def repaired(self, ns: str, keys: list[str]) -> None:
        """Forget keys the run rewrote (not the whole set: a reader may have added some)."""
        if keys:
            with self.errors():
                self.client.srem(f"{PREFIX}:repair:{ns}", *keys)

    # ---- reads ----
    def lookup(self, requests: list[tuple[str, str, list[str], list[str]]]) -> list:
        """[(view, fp, fields, key_texts)] -> per view None or (empty, [hash per key],
        [indexes of damaged hashes]): `empty` and each hash a {field bytes: value bytes} dict
        without the checksum field, a missing or damaged entity None.

        One round trip: the serving namespace and empty values of each view are cached for
        STATE_TTL seconds; past that (or for a definition the cache does not hold) `state` is
        read in the same pipeline as the entities and checked. All keys of one call are read
        from one namespace, so a lookup never mixes two definitions."""
        now = time.monotonic()
        fresh = all(self._fresh((v, tuple(f)), fp, now) for v, fp, f, _ in requests)
        replies = self._read(requests, with_state=not fresh)
        if not fresh:
            stale = False
            for (view, _fp, fields, _keys), (state, _rows) in zip(requests, replies, strict=True):
                cached = self._cache.get((view, tuple(fields)))
                if cached is None or cached[:2] != _decode_state(state):
                    self._refresh_cache(view, fields, state)
                    stale = True
                else:
                    self._cache[(view, tuple(fields))] = (*cached[:3], now)
            if stale:
                replies = self._read(requests, with_state=True)
        out = []
        for (view, fp, fields, keys), (state, rows) in zip(requests, replies, strict=True):
            cached = self._cache.get((view, tuple(fields)))
            served = _decode_state(state) if state is not None else (cached or (None,))[:2]
            if cached is None or served[0] != fp or cached[:2] != served:
                out.append(None)
            else:
                out.append((cached[2], *self._checked(view, cached[1], keys, rows)))
        return out

    def _checked(self, view: str, ns: str, keys: list[str], hashes: list) -> tuple[list, list]:
        """Hashes as read, each checked against its checksum: (the hashes without it, None
        for a missing or damaged one; indexes of the damaged). Damaged hashes are logged
        (view and key, never values), counted and queued for the next run."""
        if not self.verify_checksums:
            return [h or None for h in hashes], []
        prefix = _prefix_crc(ns)
        rows, damaged, join = [], [], b"".join
        for i, stored in enumerate(hashes):
            if not stored:
                rows.append(None)
                continue
            # `checksum.verified`'s first test, inlined: most of what checking costs a lookup
            crc = stored.pop(_MARKER, None)
            if crc is not None:
                signed = join([keys[i].encode(), *stored, *stored.values()])
                if b"%d" % crc32(signed, prefix) == crc:
                    rows.append(stored)
                    continue
                stored[_MARKER] = crc
            row = verified(crc32(keys[i].encode(), prefix), stored)
            if row is None:
                damaged.append(i)
            rows.append(row)
        if damaged:
            self._report(view, ns, [keys[i] for i in damaged])
        return rows, damaged

    def _report(self, view: str, ns: str, keys: list[str]) -> None:
        import redis

        self.corrupt_reads += len(keys)
        for key in keys:
            log.warning(
                "view `%s`, entity %s: the stored values fail their checksum; served as "
                "missing until the next `fsc run` rewrites them (namespace %s)",
                view,
                key,
                ns,
            )
        try:
            self.client.sadd(f"{PREFIX}:repair:{ns}", *keys)
        except redis.RedisError as e:  # a read-only replica: the log is all we can leave
            log.warning("could not queue them for rewriting: %s", e)

    def _fresh(self, key, fp: str, now: float) -> bool:
        cached = self._cache.get(key)
        return cached is not None and cached[0] == fp and now - cached[3] < STATE_TTL

    def _read(self, requests, with_state: bool):
        if not with_state and len(requests) == 1 and len(requests[0][3]) == 1:
            # one hash: the command itself is the round trip, without a pipeline's overhead
            view, _fp, fields, (key,) = requests[0]
            cached = self._cache.get((view, tuple(fields)))
            if cached is not None:
                with self.errors():
                    return [(None, [self.client.hgetall(f"{PREFIX}:v:{cached[1]}:{key}")])]
        with self.errors():
            pipe = self.client.pipeline(transaction=False)
            plan = []
            for view, _fp, fields, keys in requests:
                if with_state:
                    pipe.hmget(f"{PREFIX}:state:{view}", "fp", "ns")
                cached = self._cache.get((view, tuple(fields)))
                n = len(keys) if cached else 0
                for key in keys if cached else ():
                    # HGETALL, not HMGET: no field names to send (the hash holds only this
                    # view's features), which is most of a small lookup's client-side cost
                    pipe.hgetall(f"{PREFIX}:v:{cached[1]}:{key}")
                plan.append(n)
            flat = pipe.execute()
        out, i = [], 0
        for n in plan:
            state = None
            if with_state:
                state = flat[i]
                i += 1
            out.append((state, flat[i : i + n]))
            i += n
        return out

    def _refresh_cache(self, view: str, fields: list[str], state) -> None:
        fp, ns = _decode_state(state)
        if fp is None:
            self._cache.pop((view, tuple(fields)), None)
            return
        empty = self._read_empty(ns)
        if empty is None:
            raise UsageError(
                f"the stored values of an unseen entity of view `{view}` are damaged (they fail "
                f"their checksum); run `fsc run -v {view}` to rewrite them",
                "E0509",
            )
        self._cache[(view, tuple(fields))] = (fp, ns, empty, time.monotonic())

    def close(self) -> None:
        self.client.close()


class LockLost(UsageError):
    def __init__(self, view: str):
        super().__init__(
            f"the run of view `{view}` lost its lock {PREFIX}:lock:{view} (it expired or "
            "another run took it over); nothing was committed, run it again",
            "E0515",
        )


def _lock_value(owner: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{owner}"


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.lru_cache(maxsize=256)
def _prefix_crc(ns: str) -> int:
    """`crc32` of the part of an entity's Redis key before its key text (once per namespace)."""
    return crc32(f"{PREFIX}:v:{ns}:".encode())


def _decode_state(state) -> tuple[str | None, str | None]:
    fp, ns = state
    return (fp.decode() if fp else None, ns.decode() if ns else None)


def _glob(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in text)


class _RedisErrors:
    """Translate redis-py errors into one-line UsageErrors."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None:
            return False
        import redis

        where = redacted(self.url)
        if isinstance(err, redis.AuthenticationError) or (
            isinstance(err, redis.ResponseError)
            and any(w in str(err) for w in ("NOAUTH", "WRONGPASS", "invalid password"))
        ):
            raise UsageError(
                f"the online store at {where} refused the password "
                "(set it in the URL or FSC_REDIS_PASSWORD)",
                "E0503",
            ) from None
        if isinstance(err, redis.ConnectionError | redis.TimeoutError | OSError):
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UsageError(f"cannot reach the online store at {where}: {msg}", "E0504") from None
        if isinstance(err, redis.RedisError):
            raise UsageError(f"the online store at {where} failed: {err}", "E0505") from None
        return False
