"""Redis as the online store: layout, run state, batched writes and one-round-trip lookups.

Layout (one namespace per view, definition fingerprint and full-refresh generation):

    fsdsl:state:{view}       hash: ns, fp, as_of, watermark, refreshed_at  (what is serving)
                             + "__", its checksum: damaged, the view reads as never refreshed
    fsdsl:serving:{view}     string: "{checksum}:{fp}\n{ns}\n{as_of}", what a lookup reads of the
                             state (written with it, in the same MULTI), so that the states of
                             every view of a lookup and its entities' values are one MGET,
                             atomic by itself, where HGETALLs of the hashes needed a MULTI
    fsdsl:v:{ns}:{key}       string: "{checksum}:{values}", the entity's values as one JSON array,
                             every feature of the view in the order of their names (`codec.py`),
                             the checksum CRC-32 of the Redis key then the values
    fsdsl:r:{ns}:{key}       string, a link's view only: "{checksum}:{target key text}" ("" after
                             the colon: unlinked), written and removed with the entity's values;
                             what a lookup resolves the link by (one GET, or an MGET of many)
    fsdsl:empty:{ns}         hash: "values", those of an entity with no visible event (+ "__")
    fsdsl:repair:{ns}        set: keys whose values failed their checksum when read, which the
                             next run rewrites
    fsdsl:agg:{ns}           hash: the aggregate state of every entity (Arrow IPC, in parts),
                             what the next incremental run merges new events into; "__" is
                             a SHA-256 of the namespace and the parts (damaged: a full run)
    fsdsl:pending:{view}     list: Arrow IPC batches (keys, visibility) of rows pushed since
                             the state's time, appended before the rows reach the warehouse;
                             the next run recomputes the late ones and trims what it read
    fsdsl:lock:{view}        a run in progress: "host:pid:owner", held (and renewed) by that
                             run only — see `runlock.py`
    fsdsl:applied            hash: the definitions the last `fsc run` applied, for `fsc plan`
                             (`plan.py`): "view:{name}" (fingerprint, metadata, feature types),
                             written in the transaction that switches the view's state, and
                             "service:{name}" (features, types, keys); each value checksummed

A full refresh (first run, `--full`, or a changed definition) writes a new namespace and switches
`state` to it only when every write succeeded; incremental runs write in place and advance
`state` last.

An entity's values are one string, not a hash with a field per feature: a lookup of 50 entities
of 5 views reads 250 strings with one MGET per view and decodes each view's with one JSON parse
in C, where 250 HGETALLs cost Redis, the reply parser and a Python call per value ~5x as much
(the HTTP server's p99 targets: `docs/benchmarks.md`, "One string per entity"). A write replaces
the whole string in one SET, so no reader ever sees an entity half-written or a stale field.

A lookup is one MGET reading the entities' values from the namespace it believes is serving
(cached for STATE_TTL); past that, the views' serving strings are read in the same MGET and, if
one names another namespace or definition, the cache is renewed and the read repeated, so two
definitions are never mixed. A lookup through links (a service with a `key`) is one round trip
too: a script (`_LOOKUP`, or `_LOOKUP_LINK` for one link) reads each row's link string,
which holds its target's key text, and reads the views' values under that key, all in Redis (up
to `lookup.SCRIPT_ROWS` rows; past that, one pipeline reads the links' strings and a second the
views, the strings checked while Redis runs it; a chain's links by the script). Every string
read is checked against its checksum; a damaged one is logged, counted (`corrupt_reads`), served
as missing and queued for the next run.
Damaged empty values degrade their view only: its entities without stored values are served
nulls with the status `corrupt` (absent ones: `missing`, with nulls) until a run rewrites them.

Incremental runs write into the namespace that serves, so each of their batches is applied
atomically with a check that the run still holds the view's lock (`send_commands`); a full
run's fresh namespace is retired at once if the run fails, so it never stays behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any, NamedTuple
from zlib import crc32

from fsdsl.diagnostics import UsageError
from fsdsl.online.checksum import MARKER, fields_with_checksum, verified
from fsdsl.online.jsontext import loads
from fsdsl.urls import redacted

log = logging.getLogger(__name__)
_MARKER = MARKER.encode()

PREFIX = "fsdsl"
_PREFIX = PREFIX.encode()
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
# Every lock of a push's views at once, only when all are free (else none: the caller takes them
# one by one, in order, waiting); and every one released that is still ours. One round trip.
_LOCK_ALL = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
return 1
"""
_RELEASE_ALL = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n
"""
# A pushed batch's pending keys for every view it feeds (KEYS: the n locks, then the n pending
# lists; ARGV: the lock value, then a batch per view), appended only if the run holds every
# lock; else nothing, and the index of the first lock it does not hold.
_ADD_PENDING = """
local n = #KEYS / 2
for i = 1, n do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then return i end
end
for i = 1, n do redis.call('RPUSH', KEYS[n + i], ARGV[i + 1]) end
return 0
"""
# One lookup, whole, in one round trip and one atomic step: per read, its view's state (when
# asked) and, per row, the entity's values or, for a link's read, the link's string.
# A link's read also takes from each string the key text it names, which the reads after it
# use as their keys. "" is a row without a key (a null key part, an unlinked or unseen entity):
# nothing is read for it. ARGV, flat (no decoding costs the script anything): the row count n,
# the number of given groups of key texts, the number of reads; per read its state key or "",
# its key prefix or "" (nothing cached: nothing read), the group of its keys and 1 for a link's
# read (else 0); then each given group's n key texts.
_LOOKUP = r"""
local n, given, reads = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local groups, out, at = {}, {}, 4 + 4 * reads
-- a given group's key texts are read from ARGV where they are (group g, row i: ARGV[g0 + i])
for g = 1, given do groups[g] = at + (g - 1) * n - 1 end
for r = 1, reads do
  local s = 4 + 4 * (r - 1)
  local state, prefix, keys = ARGV[s], ARGV[s + 1], groups[tonumber(ARGV[s + 2])]
  local link = ARGV[s + 3] == '1'
  if state ~= '' then out[#out + 1] = redis.call('HGETALL', state) end
  local rows, texts = {}, {}
  for i = 1, n do
    local k
    if type(keys) == 'number' then k = ARGV[keys + i] else k = keys[i] end
    if prefix == '' or k == '' then
      rows[i] = false
      texts[i] = ''
    else
      local v = redis.call('GET', prefix .. k)
      rows[i] = v
      if link then
        local c = v and string.find(v, ':', 1, true)
        if c then texts[i] = string.sub(v, c + 1) else texts[i] = '' end
      end
    end
  end
  out[#out + 1] = rows
  if link then groups[#groups + 1] = texts end
end
return out
"""
# `_LOOKUP` for the shape of most services with a `key`: one link, read under the given keys,
# and views all read under the keys it finds (a device's features, by its user), with no state
# read. The same reads, without the generic groups, in one flat reply: per row its link string,
# then its values of each view (nil when unlinked). About a third less of Redis' time per call
# than `_LOOKUP` (11 against 16 µs at one row and two views, by INFO commandstats). ARGV: the
# link's string prefix, the number m of views, their m key prefixes, then the rows' key texts
# ("": none), so that everything before the key texts is the same from call to call.
_LOOKUP_LINK = r"""
local lp, m = ARGV[1], tonumber(ARGV[2])
local out, last = {}, 2 + m
for a = last + 1, #ARGV do
  local k, v, t = ARGV[a], false, ''
  if k ~= '' then v = redis.call('GET', lp .. k) end
  out[#out + 1] = v
  if v then
    local c = string.find(v, ':', 1, true)
    if c then t = string.sub(v, c + 1) end
  end
  for j = 3, last do
    if t ~= '' then out[#out + 1] = redis.call('GET', ARGV[j] .. t) else out[#out + 1] = false end
  end
end
return out
"""
# A reader trusts the serving namespace it cached for this long; a namespace replaced by a full
# refresh is removed only after RETIRE_AFTER, so no reader ever reads a removed namespace.
STATE_TTL = 1.0
RETIRE_AFTER = 5.0
APPLIED = f"{PREFIX}:applied"  # what the last runs applied, for `fsc plan`
_EMPTY = "values"  # the field of `fsdsl:empty:{ns}` holding them
_EMPTY_FIELD = _EMPTY.encode()
# how entities are stored (2: a hash with a checksum; 3: one checksummed JSON string); part of
# every fingerprint, so a store written before is refreshed in full, never misread
LAYOUT = 3
# how a link's view is stored besides its values (1: a checksummed string per entity naming its
# target's key text); part of a link view's fingerprint, so a store written before is refreshed
# in full rather than read without the strings
LINK_LAYOUT = 1
AGG_PART = 64 << 20  # a Redis value may hold 512 MB; keep each part well below


class Read(NamedTuple):
    """One view's part of a lookup (`OnlineStore.lookup`)."""

    view: str
    fp: str  # the definition the caller expects to be served
    fields: list[str] | tuple[str, ...]
    # one key text per row ("": a row without a key, whose values are not read), or the index of
    # an earlier read, a link's, whose rows resolve to the keys
    keys: list[str] | int
    # a link's read: each row's link string (its target's key text) rather than its values
    link: bool = False


class RunInputs(NamedTuple):
    """What a run reads of its view before its query (`OnlineStore.run_inputs`)."""

    state: dict[str, str]  # as `state` returns it
    pending: list[bytes]  # the pushed batches not yet applied (`add_pending_all`)
    # of the state's namespace (none without one): its aggregate state's stored digest, its
    # empty values as stored (unchecked: `checked_empty`), its queued repairs (as `repairs`)
    digest: bytes | None
    empty: dict[bytes, bytes]
    repairs: list[str]
    retired: bool  # some namespace was retired (`drop_retired` has something to look at)


class OnlineStore:
    # Stored values read whose checksum failed, since this object was made; and a switch for the
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
        self._cache: dict[tuple, _Serving] = {}  # (view, fields) -> what serves it
        self.lock_seconds = LOCK_SECONDS
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)
        self._replace = self.client.register_script(_REPLACE)
        self._lookup = self.client.register_script(_LOOKUP)
        self._lookup_link = self.client.register_script(_LOOKUP_LINK)
        self._lean_heads: dict[tuple, bytes] = {}  # `_read_by_lean_script`'s encoded heads
        self._lock_all = self.client.register_script(_LOCK_ALL)
        self._release_all = self.client.register_script(_RELEASE_ALL)
        self._add_pending = self.client.register_script(_ADD_PENDING)

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
        """What serves `view`, as `set_state` stored it; {} when nothing does — or when the
        hash fails its checksum: a damaged state is never a wrong watermark or namespace,
        the view is treated as never refreshed (its next run is a full one)."""
        with self.errors():
            raw = self.client.hgetall(f"{PREFIX}:state:{view}")
        row = self._checked_state(view, raw)
        return {k.decode(): v.decode() for k, v in (row or {}).items()}

    def _checked_state(self, view: str, raw: dict[bytes, bytes]) -> dict[bytes, bytes] | None:
        if not raw:
            return None
        key = f"{PREFIX}:state:{view}"
        row = verified(crc32(key.encode()), raw)
        if row is None:
            self.corrupt_reads += 1
            log.warning(
                "the run state of view `%s` (%s) fails its checksum: the view is treated as "
                "never refreshed until its next run, a full one",
                view,
                key,
            )
        return row

    def all_states(self, views: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
        """The state of each view that has one: of `views` only, when given (one read each,
        where a SCAN walks every key of the store: 100k entities cost a run 0.1 s)."""
        if views is not None:
            found = {name: self.state(name) for name in views}
            return {name: state for name, state in found.items() if state}
        with self.errors():
            keys = list(self.client.scan_iter(match=f"{PREFIX}:state:*", count=10_000))
        return {k.decode().split(":", 2)[2]: self.state(k.decode().split(":", 2)[2]) for k in keys}

    def set_state(
        self,
        view: str,
        state: dict[str, str],
        aggregates: bytes | None = None,
        owner: str | None = None,
        pending_done: int = 0,
        applied: tuple[str, str] | None = None,
        digest: bytes | None = None,
    ) -> None:
        """Advance what serves; with `aggregates`, replace the namespace's aggregate state in
        the same transaction, so that the state always matches the as-of time it is for; with
        `applied` (a field and value of `fsdsl:applied`), record the definition it serves.
        `digest`: `aggregates_digest_of(state["ns"], aggregates)`, when the caller has it.

        With `owner`, only while that run holds the view's lock (checked under WATCH, so a
        lock lost between the check and EXEC aborts the transaction): raises LockLost."""

        buffer, count = self.state_commands(
            view, state, aggregates, pending_done, applied, digest=digest
        )
        self.send_commands(buffer, count, transaction=True, view=view, owner=owner)

    def state_commands(
        self,
        view: str,
        state: dict[str, str],
        aggregates: bytes | None = None,
        pending_done: int = 0,
        applied: tuple[str, str] | None = None,
        *,
        digest: bytes | None = None,
    ) -> tuple[bytes, int]:
        """The commands of `set_state`, encoded (see `resp.py`): for a run that writes its
        entities and its state in one MULTI, so that a reader never sees values newer than
        the as-of time the state beside them says. The aggregate state is copied once, into
        the result (a stream batch rewrites megabytes of it)."""
        from fsdsl.online.resp import command, command_pieces

        out, n = [], 0
        if aggregates is not None:
            key = f"{PREFIX}:agg:{state['ns']}"
            named = _agg_parts(aggregates)
            if digest is None:
                digest = _agg_digest(state["ns"], named)
            flat = [x for k, v in {**named, _MARKER: digest}.items() for x in (k, v)]
            out += [command("DEL", key), *command_pieces("HSET", key, *flat)]
            n += 2
        if pending_done:
            out.append(command("LTRIM", f"{PREFIX}:pending:{view}", str(pending_done), "-1"))
            n += 1
        if applied is not None:
            out.append(command("HSET", APPLIED, *applied))
            n += 1
        key = f"{PREFIX}:state:{view}"
        fields = [x for k, v in fields_with_checksum(key, state).items() for x in (k, v)]
        out += [command("DEL", key), command("HSET", key, *fields)]
        out.append(command("SET", _serving_key(view), serving_value(view, state)))
        return b"".join(out), n + 3

    def read_applied(self) -> dict[str, str]:
        """Every field of `fsdsl:applied` as text (`plan.py` checks and decodes them)."""
        with self.errors():
            raw = self.client.hgetall(APPLIED)
        return {k.decode(): v.decode(errors="replace") for k, v in raw.items()}

    def write_applied(self, fields: dict[str, str], drop: Iterable[str] = ()) -> None:
        """Set `fields` of `fsdsl:applied` and remove `drop`, in one transaction."""
        drop = list(drop)
        if not fields and not drop:
            return
        with self.errors(), self.client.pipeline(transaction=True) as pipe:
            if drop:
                pipe.hdel(APPLIED, *drop)
            if fields:
                pipe.hset(APPLIED, mapping=fields)
            pipe.execute()

    def add_pending_all(self, batches: dict[str, bytes], owner: str) -> None:
        """Record a pushed batch's keys and visibility times for every view it feeds, before
        its rows reach the warehouse: whichever run comes next, even after a crash between
        the two, recomputes the entities it made late. One atomic step (a script): appended
        only if `owner` holds every view's lock, else nothing is, and LockLost is raised."""
        if not batches:
            return
        views = list(batches)
        keys = [f"{PREFIX}:lock:{v}" for v in views] + [f"{PREFIX}:pending:{v}" for v in views]
        with self.errors():
            lost = self._add_pending(keys=keys, args=[_lock_value(owner), *batches.values()])
        if lost:
            raise LockLost(views[int(lost) - 1])

    def run_inputs(self, views: list[str]) -> list[RunInputs]:
        """What each view's run reads before its query, for all of them in two round trips
        (the states, then what is read from the namespaces they name) where each read was one.
        Read under the views' locks: nobody else changes them until the runs end, except
        readers, who may queue repairs (a run rewrites those it read, the next run the rest)
        and other runs, who may retire a namespace (the next run drops it). The empty values
        are returned as stored: `checked_empty` checks them."""
        with self.errors(), self.client.pipeline(transaction=False) as pipe:
            for v in views:
                pipe.hgetall(f"{PREFIX}:state:{v}")
            raws = pipe.execute()
        states = [
            {k.decode(): x.decode() for k, x in (self._checked_state(v, raw) or {}).items()}
            for v, raw in zip(views, raws, strict=True)
        ]
        with self.errors(), self.client.pipeline(transaction=False) as pipe:
            pipe.exists(f"{PREFIX}:retired")
            for v, state in zip(views, states, strict=True):
                pipe.lrange(f"{PREFIX}:pending:{v}", 0, -1)
                if state.get("ns"):
                    ns = state["ns"]
                    pipe.hget(f"{PREFIX}:agg:{ns}", _MARKER)
                    pipe.hgetall(f"{PREFIX}:empty:{ns}")
                    pipe.smembers(f"{PREFIX}:repair:{ns}")
            replies = iter(pipe.execute())
        retired = bool(next(replies))
        out = []
        for state in states:
            pending, digest, empty, repairs = next(replies), None, {}, []
            if state.get("ns"):
                digest, empty = next(replies), _as_dict(next(replies))
                repairs = sorted(k.decode() for k in next(replies))
            out.append(RunInputs(state, pending, digest, empty, repairs, retired))
        return out

    def _as_owner(self, view: str | None, owner: str | None, queue, lost: str = "") -> None:
        """One MULTI of the commands `queue(pipe)` adds; with `owner`, only while that run holds
        `view`'s lock: WATCHed, so a lock lost between the check and EXEC aborts it (an abort
        caused by our own renewal is retried), and LockLost is raised."""
        import redis

        lock = f"{PREFIX}:lock:{view}"
        with self.errors(), self.client.pipeline(transaction=True) as pipe:
            for _attempt in range(5):
                if owner is not None:
                    pipe.watch(lock)
                    if pipe.get(lock) != _lock_value(owner).encode():
                        raise LockLost(view or lost)
                    pipe.multi()
                queue(pipe)
                try:
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue  # touched by our own renewal, or lost: the next check tells
            raise LockLost(view or lost)

    def read_aggregates(self, ns: str) -> bytes | None:
        """The aggregate state `set_state` stored for namespace `ns`: None when absent, or
        when it fails its digest (a bit flipped on disk would otherwise be merged into the next
        run's values and written with a valid entity checksum); the run then refreshes in
        full, which needs no stored state."""
        key = f"{PREFIX}:agg:{ns}"
        with self.errors():
            raw = self.client.hgetall(key)
        if not raw:
            return None
        digest = raw.pop(_MARKER, None)
        if digest is None or digest != _agg_digest(ns, raw):
            self.corrupt_reads += 1
            log.warning(
                "the aggregate state %s fails its checksum (or predates it): the next run of "
                "its view refreshes in full",
                key,
            )
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

    def lock_all(self, views: list[str], owner: str) -> bool:
        """Take every view's lock at once if none is held, else none (`lock` takes one, and
        one a dead run on this machine left behind)."""
        if not views:
            return True
        ms = _millis(self.lock_seconds)
        with self.errors():
            keys = [f"{PREFIX}:lock:{v}" for v in views]
            return bool(self._lock_all(keys=keys, args=[_lock_value(owner), ms]))

    def unlock_all(self, views: list[str], owner: str) -> int:
        """`unlock` of each view, in one round trip: how many were released."""
        if not views:
            return 0
        with self.errors():
            keys = [f"{PREFIX}:lock:{v}" for v in views]
            return int(self._release_all(keys=keys, args=[_lock_value(owner)]))

    # ---- writes ----
    @staticmethod
    def entity_key(ns: str, key_text: str) -> str:
        return f"{PREFIX}:v:{ns}:{key_text}"

    @staticmethod
    def link_key(ns: str, key_text: str) -> str:
        """The key of an entity's link string, in a link's view's namespace."""
        return f"{PREFIX}:r:{ns}:{key_text}"

    def write_empty(
        self, ns: str, values: str, *, view: str | None = None, owner: str | None = None
    ) -> None:
        """Store the values of an entity with no visible event (`codec.values_array`). With
        `owner` (rewriting them in the namespace that serves `view`): only while that run holds
        the view's lock, checked under WATCH like `send_commands`; else LockLost."""
        key = f"{PREFIX}:empty:{ns}"

        def queue(pipe) -> None:
            pipe.delete(key)
            pipe.hset(key, mapping=fields_with_checksum(key, {_EMPTY: values}))

        self._as_owner(view, owner if view is not None else None, queue, lost=ns)

    def checked_empty(self, ns: str, stored: dict[bytes, bytes]) -> str | None:
        """The empty values of a namespace, from the hash `run_inputs` read, as `write_empty`
        stored them; None when they are absent or fail their checksum (the run then writes them
        again)."""
        empty, _how = self._checked_empty(ns, stored)
        return None if empty is None else empty.decode()

    def _read_empty(self, ns: str) -> tuple[bytes | None, str]:
        """(the empty values or None, "ok" | "absent" | "damaged"): absent is no damage (a
        namespace just retired, a run that has not written them yet), so it is neither
        counted nor logged as a checksum failure."""
        with self.errors():
            stored = self.client.hgetall(f"{PREFIX}:empty:{ns}")
        return self._checked_empty(ns, stored)

    def _checked_empty(self, ns: str, stored: dict[bytes, bytes]) -> tuple[bytes | None, str]:
        key = f"{PREFIX}:empty:{ns}"
        if not stored:
            return None, "absent"
        empty = verified(crc32(key.encode()), stored)
        empty = empty.get(_EMPTY_FIELD) if empty is not None else None
        if empty is None:
            self.corrupt_reads += 1
            log.warning("the empty values of namespace %s fail their checksum", ns)
            return None, "damaged"
        return empty, "ok"

    def write_batch(
        self,
        ns: str,
        puts: Iterable[tuple[str, str]],
        deletes: Iterable[str],
        fresh: bool = False,
        links: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Write the values of `puts` ((key text, `codec.values_text`)), remove those of
        `deletes`; `links`, in a link's view's namespace: (key text, the target's key text or
        "" when unlinked) of each entity's link string to write. For a few entities (tests, a
        tool); a run writes its batches encoded by Arrow (`refresh._batch_commands`).

        In a serving namespace (`fresh=False`) a batch is one MULTI/EXEC, so a reader sees all
        of it or none. A fresh namespace is not served until the run switches to it."""
        with self.errors():
            pipe = self.client.pipeline(transaction=not fresh)
            for key_text, values in puts:
                pipe.set(self.entity_key(ns, key_text), entity_value(ns, key_text, values))
            for key_text in deletes:
                pipe.delete(self.entity_key(ns, key_text), self.link_key(ns, key_text))
            for key_text, target in links:
                pipe.set(self.link_key(ns, key_text), link_value(ns, key_text, target))
            pipe.execute()

    def send_commands(
        self,
        buffer: bytes | list[bytes],
        count: int,
        transaction: bool,
        *,
        view: str | None = None,
        owner: str | None = None,
    ) -> None:
        """Send `count` commands already encoded in RESP (see `resp.py`) at once, as one
        MULTI/EXEC with `transaction`, and read every reply (an error reply raises). `buffer`
        may be a list of pieces, sent in order: a large one is then never copied to join it.

        With `owner` (a transaction into the namespace that serves `view`), the batch is
        applied only while that run holds the view's lock: the lock is WATCHed and compared
        before MULTI, so a lock taken over at any moment before EXEC aborts the batch — a
        renewal thread that only notices a lost lock every third of its period cannot let
        whole batches land meanwhile. An abort caused by our own renewal (it touches the
        key) is retried; a lock that is not ours raises LockLost, nothing of the batch
        written."""
        from fsdsl.online.resp import command

        if not count:
            return
        guarded = owner is not None and view is not None
        pieces = [buffer] if isinstance(buffer, bytes) else list(buffer)
        if transaction:
            pieces = [command("MULTI"), *pieces, command("EXEC")]
        with self.errors(), self._connection() as conn:
            for _attempt in range(5):
                if guarded:
                    lock = f"{PREFIX}:lock:{view}"
                    conn.send_packed_command(
                        [command("WATCH", lock) + command("GET", lock)], check_health=False
                    )
                    conn.read_response()
                    if conn.read_response() != _lock_value(owner).encode():
                        conn.send_command("UNWATCH")
                        conn.read_response()
                        raise LockLost(view)
                conn.send_packed_command(pieces, check_health=False)
                for _ in range(count + 1 if transaction else count):
                    conn.read_response()
                if not transaction:
                    return
                done = conn.read_response()  # EXEC: None when a watched key changed
                if done is not None or not guarded:
                    for reply in done or ():
                        if isinstance(reply, Exception):
                            raise reply
                    return
            raise LockLost(view)

    @contextlib.contextmanager
    def _connection(self):
        """A connection of the pool for commands encoded here (`send_commands`, `_pipeline`,
        `_run_lookup`): on any error it is closed, since replies may be left unread on it, and
        it is returned to the pool in every case."""
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            yield conn
        except BaseException:
            conn.disconnect()
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
            for kind in ("v", "r"):  # entities' values, and a link's strings
                for key in self.client.scan_iter(
                    match=f"{PREFIX}:{kind}:{_glob(ns)}:*", count=batch
                ):
                    pipe.unlink(key)
                    removed += kind == "v"
                    if len(pipe) >= batch:
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

    def repaired(self, ns: str, keys: list[str]) -> None:
        """Forget keys the run rewrote (not the whole set: a reader may have added some)."""
        if keys:
            with self.errors():
                self.client.srem(f"{PREFIX}:repair:{ns}", *keys)

    # ---- reads ----
    def lookup(
        self, requests: list[Read | tuple], as_of: bool = False, script: bool = True
    ) -> list:
        """[Read] -> per read None or (empty, [values per key], [indexes of damaged ones],
        as-of time): `empty` and each entity's values a list, every feature of the view in the
        stored order (`codec.stored_names`), as JSON decoded them (`codec.converter` finishes
        the types JSON has not), a missing or damaged entity None. When the view's empty
        values are damaged, `empty` is None (nulls: they are not served) and every entity
        without stored values counts as damaged; when they are absent, None too (status
        `missing`). The as-of time (the ISO text `set_state` stored) only with `as_of`, else
        None.

        One round trip: without links, one MGET; with links, the whole lookup is one script
        (`_LOOKUP`), so a link's target keys are found in Redis and the values they name read
        in the same step. The serving namespace and empty values of each view are cached for
        STATE_TTL seconds; past that (or for a definition the cache does not hold) what serves
        is read in the same step (the views' serving strings in the MGET, their states in the
        script) and checked. All keys of one call are read from one namespace, so a lookup
        never mixes two definitions.

        With `as_of`, what serves is read on every call, in the step that reads the entities
        (one MGET, or a script: each runs alone, no write falls between its reads): an
        incremental run rewrites the serving namespace in place and advances its as-of time
        without changing the namespace, so a cached as-of time could be older than the values
        read.

        Without `script` (a lookup of many rows, where a pipeline costs Redis less than the
        script), reads keyed by a link are a second pipeline, sent
        under the key texts its strings name as read, which are checked while Redis answers.

        A link's read gives, per row, the key text its target is read under ("" for an
        unlinked entity, None for one not stored or a damaged string) rather than values. The
        script takes those keys from the strings as stored, before their checksums are checked
        (it cannot check them); rows whose checked key differs (a damaged string) are read
        again with the right one, so a damaged link never leads to another entity's values."""
        requests = [r if isinstance(r, Read) else Read(*r) for r in requests]
        now = time.monotonic()
        fresh = not as_of and all(
            self._fresh((r.view, tuple(r.fields)), r.fp, now) for r in requests
        )
        replies = self._read(requests, with_state=not fresh, atomic=as_of, script=script)
        if not fresh:
            stale = False
            for r, (state, _rows, _as_of, _built) in zip(requests, replies, strict=True):
                cached = self._cache.get((r.view, tuple(r.fields)))
                # degraded empty values are looked at again (the next run rewrites them)
                if cached is None or cached.serving != _decode_state(state) or cached.degraded:
                    self._refresh_cache(r.view, r.fields, state)
                    stale = True
                else:
                    self._cache[(r.view, tuple(r.fields))] = cached._replace(checked=now)
            if stale:
                replies = self._read(requests, with_state=True, atomic=as_of, script=script)
        out: list = []
        resolved: dict[int, list[str]] = {}  # a link read's index -> its rows' target key texts
        for i, (r, (state, rows, when, built)) in enumerate(zip(requests, replies, strict=True)):
            cached = self._cache.get((r.view, tuple(r.fields)))
            served = _decode_state(state) if state is not None else (cached or (None,))[:2]
            if cached is None or served[0] != r.fp or cached.serving != served:
                out.append(None)
                continue
            keys = r.keys
            if isinstance(keys, int):  # the keys a link resolved: as checked, not as stored
                if keys not in resolved:  # the link itself is not served
                    out.append(None)
                    continue
                keys = resolved[keys]
                built = replies[r.keys][3]
                if built is not None and built != keys:
                    rows = self._read_again(cached.ns, rows, built, keys, r.link)
            if isinstance(rows, _CheckedLinks):  # checked while the next trip was read
                found, damaged = rows
            elif r.link:
                found, damaged = self._checked_links(r.view, cached.ns, keys, rows)
            else:
                found, damaged = self._checked(r.view, cached.ns, keys, rows)
            if cached.degraded == "corrupt":  # no trusted values for an entity without its own
                damaged = sorted({*damaged, *(j for j, row in enumerate(found) if row is None)})
            if r.link:
                resolved[i] = [text or "" for text in found]
            # `when` was read with these rows, from the state naming the namespace they come
            # from (checked just above)
            out.append((cached.empty, found, damaged, when.decode() if when else None))
        return out

    def _read_again(
        self, ns: str, rows: list, built: list[str], keys: list[str], link: bool = False
    ) -> list:
        """`rows` with those read under a key text other than `keys` read again under the
        right one (another round trip: only after a damaged link string); `link`: the rows
        are a link's strings."""
        rows = list(rows)
        wrong = [j for j, (a, b) in enumerate(zip(built, keys, strict=True)) if a != b]
        with self.errors():
            pipe = self.client.pipeline(transaction=False)
            for j in wrong:
                if keys[j] and link:
                    pipe.get(self.link_key(ns, keys[j]))
                elif keys[j]:
                    pipe.get(self.entity_key(ns, keys[j]))
            again = iter(pipe.execute())
        for j in wrong:
            rows[j] = next(again) if keys[j] else None
        return rows

    def _checked(self, view: str, ns: str, keys: list[str], stored: list) -> tuple[list, list]:
        """Entities' strings as read, each checked against its checksum and decoded: (their
        values, None for a missing or damaged entity; indexes of the damaged). The checked
        values are decoded with one JSON parse for all of them. Damaged ones are logged (view
        and key, never values), counted and queued for the next run."""
        check = self.verify_checksums
        held, texts, damaged = _signed_texts(keys, stored, _prefix_crc(ns), check)
        rows: list = [None] * len(stored)
        try:
            decoded = loads(b"[" + b",".join(texts) + b"]") if texts else []
        except ValueError:
            decoded = None
        if (
            decoded is None
            or len(decoded) != len(texts)
            or (not check and not all(type(v) is list for v in decoded))
        ):
            # checks off (a benchmark): an unchecked string may be anything; one by one, each
            # that is not an array is damaged, as a failed checksum would have said
            decoded = []
            for i, text in zip(held, texts, strict=True):
                try:
                    values = loads(text)
                except ValueError:
                    values = None
                if not isinstance(values, list):
                    values = None
                    damaged.append(i)
                decoded.append(values)
        for i, values in zip(held, decoded, strict=True):
            rows[i] = values
        if damaged:
            damaged.sort()
            self._report(view, ns, [keys[i] for i in damaged])
        return rows, damaged

    def _checked_links(
        self, view: str, ns: str, keys: list[str], values: list
    ) -> tuple[list, list]:
        """A link's strings as read, each checked against its checksum: (per row the key text
        of its target, "" when unlinked, None for no string or a damaged one; indexes of the
        damaged), damaged ones reported as `_checked` does."""
        check = self.verify_checksums
        held, texts, damaged = _signed_texts(keys, values, _link_prefix_crc(ns), check)
        found: list[str | None] = [None] * len(values)
        for i, text in zip(held, texts, strict=True):
            try:
                found[i] = text.decode("utf-8")
            except UnicodeDecodeError:  # checks off (a benchmark): damaged all the same
                damaged.append(i)
        if damaged:
            damaged.sort()
            self._report(view, ns, [keys[i] for i in damaged])
        return found, damaged

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
        return cached is not None and cached.fp == fp and now - cached.checked < STATE_TTL

    def _read(
        self, requests: list[Read], with_state: bool, atomic: bool, script: bool = True
    ) -> list:
        """Per read (state (fp, ns) or None, its rows as read, the state's as_of or None, and
        for a link's read the key texts the script took from its strings, unchecked), in one
        round trip: by the lookup script when a read takes its keys from a link's in the same
        trip, else as one MGET (atomic by itself: no MULTI/EXEC) of the views' serving strings
        and every read's keys."""
        if any(isinstance(r.keys, int) for r in requests):
            if script or atomic:
                return self._read_by_script(requests, with_state)
            return self._read_in_two_trips(requests, with_state)
        serving = [self._cache.get((r.view, tuple(r.fields))) for r in requests]
        replies = self._pipeline(self._encode_reads(requests, serving, with_state), False)
        return [tuple(o) for o in self._decode_reads(requests, serving, with_state, replies)]

    @staticmethod
    def _encode_reads(requests: list[Read], serving: list, with_state: bool) -> list[bytes]:
        """The one command of `_read`: an MGET of every read's serving string (with
        `with_state`), then, for each read whose view is cached and whose keys are given, its
        strings (an entity's values, or a link's; reads keyed by a link are left out)."""
        wanted = [_serving_key_bytes(r.view) for r in requests] if with_state else []
        for r, cached in zip(requests, serving, strict=True):
            if cached is None or isinstance(r.keys, int):
                continue
            prefix = cached.prefix(r.link)
            wanted += [prefix + k.encode() for k in r.keys if k]
        return [_mget(wanted)] if wanted else []

    def _decode_reads(self, requests: list[Read], serving: list, with_state: bool, replies):
        """`_encode_reads`' reply as `_read` gives it, a list [state, rows, as_of, None] per
        read (rows [] for a read left out)."""
        values = iter(replies[0] if replies else ())
        states = []
        if with_state:
            states = [self._checked_serving(r.view, next(values)) for r in requests]
        out: list = []
        for i, (r, cached) in enumerate(zip(requests, serving, strict=True)):
            state, when = states[i] if with_state else (None, None)
            rows: list = []
            if cached is not None and not isinstance(r.keys, int):
                rows = [next(values) if k else None for k in r.keys]
            out.append([state, rows, when, None])
        return out

    def _checked_serving(self, view: str, value: bytes | None) -> tuple[tuple, bytes | None]:
        """A serving string as read: ((fp, ns), as_of), as bytes; (None, None) and None when
        absent or damaged (then counted and logged, as a damaged state hash is): the view is
        not served until its next run writes it again."""
        if value is None:
            return (None, None), None
        _held, texts, _damaged = _signed_texts([""], [value], _serving_crc(view))
        parts = texts[0].split(b"\n") if texts else []
        if len(parts) == 3:
            fp, ns, as_of = parts
            return (fp, ns), as_of
        self.corrupt_reads += 1
        log.warning(
            "the serving state of view `%s` (%s) fails its checksum: the view is not served "
            "until its next run",
            view,
            _serving_key(view),
        )
        return (None, None), None

    def _read_in_two_trips(self, requests: list[Read], with_state: bool) -> list:
        """`_read` of reads keyed by links in two pipelines, for lookups of many rows: the
        states (when asked) and the reads of given keys (a link's: one MGET), then the reads
        under the key texts the links' strings name as read. Those strings are checked while
        Redis runs the second trip (`_CheckedLinks` rows); a row whose checked text differs
        is read again by `lookup`, as after the script. One level of links only: a chain's
        links are resolved by the script (see `lookup.lookup`)."""
        serving = [self._cache.get((r.view, tuple(r.fields))) for r in requests]
        first = self._encode_reads(requests, serving, with_state)
        with self.errors(), self._connection() as conn:
            replies = self._pipeline(first, False, conn=conn)
            out = self._decode_reads(requests, serving, with_state, replies)
            # a link's read -> its rows' key texts, as read
            taken = {
                j: [_link_target(v) for v in out[j][1]]
                for j, r in enumerate(requests)
                if r.link and not isinstance(r.keys, int)
            }
            second: list[bytes] = []
            for r, cached in zip(requests, serving, strict=True):
                if isinstance(r.keys, int) and cached is not None:
                    if r.link:
                        raise ValueError("a chain of links is resolved by the lookup script")
                    prefix = cached.prefix(False)
                    wanted = [prefix + t for t in taken[r.keys] if t]
                    if wanted:
                        second.append(_mget(wanted))

            def check() -> None:  # while Redis runs the second trip
                for j, texts in taken.items():
                    r, cached = requests[j], serving[j]
                    out[j][3] = [t.decode("utf-8", "surrogateescape") for t in texts]
                    if cached is not None:
                        found = self._checked_links(r.view, cached.ns, r.keys, out[j][1])
                        out[j][1] = _CheckedLinks(*found)

            replies = iter(self._pipeline(second, False, check, conn=conn))
        for j, (r, cached) in enumerate(zip(requests, serving, strict=True)):
            if isinstance(r.keys, int) and cached is not None:
                texts = taken[r.keys]
                values = iter(next(replies) if any(texts) else ())
                out[j][1] = [next(values) if t else None for t in texts]
        return [tuple(o) for o in out]

    def _pipeline(self, commands: list[bytes], atomic: bool, meanwhile=None, conn=None) -> list:
        """The replies of commands encoded here (a HGETALL's: a dict with RESP3, a flat
        [field, value, ...] list with RESP2, see `_as_dict`; an MGET's: a list), sent in one
        write and read as they are (with hiredis, a C parser), which costs a third of what a
        redis-py pipeline spends packing and parsing command by command; with `atomic`, in one
        MULTI/EXEC.
        `meanwhile`, called once the commands are sent, works while Redis runs them; `conn`, a
        connection the caller holds (within `errors` and `_connection`), else one of the pool."""
        if not commands:
            if meanwhile is not None:
                meanwhile()
            return []
        buffer = b"".join(commands)
        if atomic:
            buffer = b"*1\r\n$5\r\nMULTI\r\n" + buffer + b"*1\r\n$4\r\nEXEC\r\n"
        if conn is None:
            with self.errors(), self._connection() as conn:
                return _exchange(conn, buffer, len(commands), atomic, meanwhile)
        return _exchange(conn, buffer, len(commands), atomic, meanwhile)

    def _run_lookup(self, args: list[bytes]) -> list:
        """EVALSHA of the lookup script with these arguments (no keys)."""
        from fsdsl.online.resp import command

        return self._run_script(self._lookup, command(b"EVALSHA", self._lookup.sha, b"0", *args))

    def _run_script(self, script, buffer: bytes) -> list:
        """A script's EVALSHA, encoded by the caller and sent on a connection of the pool as
        `_pipeline` does (redis-py's Script costs a lookup of one key more than the script);
        the script is loaded when the server does not know it (a restart, SCRIPT FLUSH)."""
        import redis

        with self.errors():
            for attempt in range(2):
                try:
                    with self._connection() as conn:
                        conn.send_packed_command([buffer], check_health=False)
                        return conn.read_response()
                except redis.exceptions.NoScriptError:
                    if attempt:
                        raise
                    self.client.script_load(script.script)
        raise AssertionError("unreachable")

    def _read_by_lean_script(self, requests: list[Read], serving: list) -> list:
        """`_read_by_script` for one link and the views read under its keys (`_LOOKUP_LINK`):
        the same rows, from a reply that is one flat list, the command's head encoded once per
        pair of namespaces and reused."""
        link, m = requests[0], len(requests) - 1
        prefixes = tuple(c.prefix(r.link) for r, c in zip(requests, serving, strict=True))
        head = self._lean_heads.get(prefixes)
        if head is None:
            from fsdsl.online.resp import command

            if len(self._lean_heads) > 256:  # namespaces replaced: forget the old ones
                self._lean_heads.clear()
            sha = self._lookup_link.sha
            head = command(b"EVALSHA", sha, b"0", *prefixes[:1], b"%d" % m, *prefixes[1:])
            head = self._lean_heads[prefixes] = head[head.index(b"\r\n") + 2 :]
        keys = link.keys
        buffer = b"*%d\r\n%s%s" % (5 + m + len(keys), head, _bulks([k.encode() for k in keys]))
        reply = self._run_script(self._lookup_link, buffer)
        width = m + 1
        strings = reply[::width]
        out = [(None, strings, None, [_link_text(v) for v in strings])]
        for j in range(1, width):
            out.append((None, reply[j::width], None, None))
        return out

    def _read_by_script(self, requests: list[Read], with_state: bool) -> list:
        """`_read` by the lookup script (`_LOOKUP`): links resolved in Redis, one step; by
        `_LOOKUP_LINK` when the reads are one link and views keyed by it, with nothing to
        read of their states."""
        if not with_state and requests[0].link and isinstance(requests[0].keys, list):
            serving = [self._cache.get((r.view, tuple(r.fields))) for r in requests]
            if None not in serving and all(r.keys == 0 and not r.link for r in requests[1:]):
                return self._read_by_lean_script(requests, serving)
        n = next((len(r.keys) for r in requests if isinstance(r.keys, list)), 0)
        given: dict[int, int] = {}  # id of a key list -> its group in the script
        texts: list[bytes] = []
        groups: list[int] = []  # each read's; a link's made group: -1 - the link's index
        links: list[int] = []  # the index of each link's read, in order
        used: set[int] = set()  # links whose keys a later read takes
        for j, r in enumerate(requests):
            keys = r.keys
            if isinstance(keys, int):
                groups.append(-1 - keys)
                used.add(keys)
            else:
                if len(keys) != n:
                    raise ValueError("every read of a lookup has one key text per row")
                group = given.get(id(keys))
                if group is None:  # views of one entity share their key list: sent once
                    group = given[id(keys)] = len(given) + 1
                    texts += [t.encode() for t in keys]
                groups.append(group)
            if r.link:
                links.append(j)
        # a link's read makes the group after the given ones and the links' before it
        made = {j: len(given) + k + 1 for k, j in enumerate(links)}
        args: list[bytes] = [b"%d" % n, b"%d" % len(given), b"%d" % len(requests)]
        for r, group in zip(requests, groups, strict=True):
            cached = self._cache.get((r.view, tuple(r.fields)))
            args += [
                b"%s:state:%s" % (_PREFIX, r.view.encode()) if with_state else b"",
                cached.prefix(r.link) if cached is not None else b"",
                b"%d" % (group if group > 0 else made[-1 - group]),
                b"1" if r.link else b"0",
            ]
        args += texts
        reply = self._run_lookup(args)
        out, at = [], 0
        for j, r in enumerate(requests):
            state, when = None, None
            if with_state:
                row = self._checked_state(r.view, _as_dict(reply[at])) or {}
                state, when = (row.get(b"fp"), row.get(b"ns")), row.get(b"as_of")
                at += 1
            built = None
            rows = reply[at]
            if r.link and j in used:  # the keys the script read the reads after it under
                built = [_link_text(v) for v in rows]
            at += 1
            out.append((state, rows, when, built))
        return out

    def _refresh_cache(self, view: str, fields: list[str], state, again: bool = True) -> None:
        """Cache what serves `view` with its empty values. Those are absent when the namespace
        was just replaced (`state` read a moment too early): `state` is read once more; still
        absent, the view's entities without stored values are served `missing`, with nulls.
        Damaged, they are never served: those entities get nulls with the status `corrupt`
        (the view's stored entities and the service's other views are unaffected)."""
        fp, ns = _decode_state(state)
        if fp is None:
            self._cache.pop((view, tuple(fields)), None)
            return
        empty, how = self._read_empty(ns)
        if how == "absent" and again:
            with self.errors():
                raw = self.client.hgetall(f"{PREFIX}:state:{view}")
            row = self._checked_state(view, raw) or {}
            return self._refresh_cache(view, fields, (row.get(b"fp"), row.get(b"ns")), False)
        degraded = {"ok": None, "absent": "missing", "damaged": "corrupt"}[how]
        if how == "absent":
            log.warning(
                "view `%s`: the values of an unseen entity are absent from namespace %s; its "
                "entities without stored values are served as missing, with nulls",
                view,
                ns,
            )
        elif how == "damaged":
            log.warning(
                "view `%s`: the values of an unseen entity fail their checksum; its entities "
                "without stored values are served as corrupt, with nulls, until the next "
                "`fsc run -v %s` rewrites them",
                view,
                view,
            )
        self._cache[(view, tuple(fields))] = _Serving(
            fp, ns, loads(empty) if empty is not None else None, time.monotonic(), degraded
        )

    def close(self) -> None:
        self.client.close()


class _Serving(NamedTuple):
    """What serves a view, as a lookup caches it for STATE_TTL seconds."""

    fp: str
    ns: str
    empty: list | None  # the values of an unseen entity, decoded (None: absent or damaged)
    checked: float  # when `state` was last read (time.monotonic())
    # None, or what an entity without stored values is when `empty` is absent ("missing") or
    # damaged ("corrupt"): such a view is looked at again on every state read
    degraded: str | None

    @property
    def serving(self) -> tuple[str, str]:
        return (self.fp, self.ns)

    def prefix(self, link: bool) -> bytes:
        """The namespace's key prefix of its entities' values, or of a link's strings."""
        return _key_prefix(self.ns, "r" if link else "v")


@functools.lru_cache(maxsize=1024)
def _key_prefix(ns: str, kind: str) -> bytes:
    return f"{PREFIX}:{kind}:{ns}:".encode()


class LockLost(UsageError):
    """`written` says what the run had written when it found out (the run knows: see
    `refresh_view`); the store only knows that it refused a write."""

    def __init__(self, view: str, written: str = "nothing was committed"):
        super().__init__(
            f"the run of view `{view}` lost its lock {PREFIX}:lock:{view} (it expired or "
            f"another run took it over); {written}; run it again",
            "E0515",
        )
        self.view = view


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
def _link_prefix_crc(ns: str) -> int:
    """`crc32` of the part of a link string's Redis key before its key text."""
    return crc32(f"{PREFIX}:r:{ns}:".encode())


@functools.lru_cache(maxsize=256)
def _prefix_crc(ns: str) -> int:
    """`crc32` of the part of an entity's Redis key before its key text (once per namespace)."""
    return crc32(f"{PREFIX}:v:{ns}:".encode())


def _as_dict(reply) -> dict:
    """A HGETALL reply as a dict: RESP3 replies are maps already (redis-py's default protocol
    since 8.0); RESP2's, and a script's (a Lua table is an array), are flat lists."""
    if isinstance(reply, dict):
        return reply
    it = iter(reply)
    return dict(zip(it, it, strict=True))


def _serving_key(view: str) -> str:
    return f"{PREFIX}:serving:{view}"


@functools.lru_cache(maxsize=1024)
def _serving_key_bytes(view: str) -> bytes:
    return _serving_key(view).encode()


@functools.lru_cache(maxsize=1024)
def _serving_crc(view: str) -> int:
    return crc32(_serving_key_bytes(view))


def serving_value(view: str, state: dict[str, str]) -> bytes:
    """A view's serving string as stored: "{checksum}:{fp}\n{ns}\n{as_of}", the checksum
    CRC-32 of its Redis key then the text (`state_commands` writes it beside the state)."""
    text = f"{state['fp']}\n{state['ns']}\n{state['as_of']}".encode()
    return _sign(b"", text, _serving_crc(view))


def entity_value(ns: str, key_text: str, values: str) -> bytes:
    """An entity's values as stored: "{checksum}:{values}", the checksum CRC-32 of its Redis key
    then `values` (`codec.values_text`), as `refresh._batch_commands` writes them by Arrow."""
    return _sign(key_text.encode(), values.encode(), _prefix_crc(ns))


def link_value(ns: str, key_text: str, target: str) -> bytes:
    """A link string as stored: "{checksum}:{target}", the checksum CRC-32 of the string's
    Redis key then `target` (as `refresh._link_commands` writes them, by Arrow)."""
    return _sign(key_text.encode(), target.encode(), _link_prefix_crc(ns))


def _sign(key_text: bytes, text: bytes, seed: int) -> bytes:
    """A string as stored: "{checksum}:{text}", the checksum CRC-32 of its whole Redis key (the
    prefix's CRC `seed`, then `key_text`) then `text` (`resp.signed` is the same, by Arrow)."""
    return b"%d:%s" % (crc32(key_text + text, seed), text)


def _signed_texts(
    keys: list[str], values: list, seed: int, check: bool = True
) -> tuple[list[int], list[bytes], list[int]]:
    """`_sign`'s strings as read under `keys` (None: absent), each checked against its checksum
    (not with `check` off, a benchmark's switch): (the indexes of those that hold a text, their
    texts, the indexes of the damaged). One loop for every kind: what checking costs a lookup."""
    held: list[int] = []
    texts: list[bytes] = []
    damaged: list[int] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        crc, colon, text = value.partition(b":")
        if colon and (not check or crc == b"%d" % crc32(keys[i].encode() + text, seed)):
            held.append(i)
            texts.append(text)
        else:
            damaged.append(i)
    return held, texts, damaged


def _exchange(conn, buffer: bytes, count: int, atomic: bool, meanwhile) -> list:
    """`_pipeline` on a connection: `buffer` (`count` commands) sent, the replies read."""
    conn.send_packed_command([buffer], check_health=False)
    if meanwhile is not None:
        meanwhile()
    if not atomic:
        return _replies(conn, count)
    _replies(conn, count + 1)  # +OK, then +QUEUED for each command
    replies = conn.read_response()
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _replies(conn, count: int) -> list:
    """The next `count` replies on `conn`: what `read_response` gives, taken from hiredis's
    reader while it holds whole replies, redis-py's `read_response` called only when the
    socket must be read (with its timeouts and errors). redis-py spends ~6 µs a reply around
    hiredis's ~1 µs: 1.5 ms of a lookup of 50 entities of 5 views (255 replies with the
    MULTI/EXEC of an `_as_of`)."""
    reader = getattr(conn._parser, "_reader", None)
    if _NOT_ENOUGH_DATA is None or reader is None or not hasattr(reader, "gets"):
        return [conn.read_response() for _ in range(count)]  # the pure-Python parser
    gets, out = reader.gets, []
    while len(out) < count:
        reply = gets()
        if reply is _NOT_ENOUGH_DATA:
            out.append(conn.read_response())  # reads the socket, then one reply
        elif isinstance(reply, Exception):  # a reply error, as `read_response` raises it
            raise reply
        elif _PUSH is not None and isinstance(reply, _PUSH):
            conn._parser.handle_push_response(reply)  # not a reply (RESP3 push)
        else:
            out.append(reply)
    return out


try:  # the sentinel redis-py's hiredis reader is built with (`_replies`)
    from hiredis import PushNotification as _PUSH
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
except ImportError:  # no hiredis, or another redis-py: replies one by one
    _NOT_ENOUGH_DATA = _PUSH = None


def _mget(keys: list[bytes]) -> bytes:
    return b"*%d\r\n$4\r\nMGET\r\n%s" % (len(keys) + 1, _bulks(keys))


def _bulks(values: list[bytes]) -> bytes:
    """The values as RESP bulk strings, one after the other (a command's arguments)."""
    return b"".join([b"$%d\r\n%s\r\n" % (len(v), v) for v in values])


class _CheckedLinks(NamedTuple):
    """A link's rows checked already (`_read_in_two_trips`): `_checked_links`'s result."""

    found: list
    damaged: list


def _link_target(value: bytes | None) -> bytes:
    """The key text a link string as stored names (unchecked): what follows its first colon;
    b"" for none (no string, no colon)."""
    if not value:
        return b""
    colon = value.find(b":")
    return b"" if colon < 0 else value[colon + 1 :]


def _link_text(value: bytes | None) -> str:
    """`_link_target` as text: the key the lookup script took from the string."""
    return _link_target(value).decode("utf-8", "surrogateescape")


def _decode_state(state) -> tuple[str | None, str | None]:
    fp, ns = state
    return (fp.decode() if fp else None, ns.decode() if ns else None)


def _agg_parts(aggregates: bytes) -> dict[bytes, bytes]:
    """The aggregate state cut into hash fields of at most AGG_PART bytes, named in order."""
    parts = [aggregates[i : i + AGG_PART] for i in range(0, len(aggregates), AGG_PART)]
    return {f"{i:06d}".encode(): p for i, p in enumerate(parts or [b""])}


def aggregates_digest_of(ns: str, aggregates: bytes) -> bytes:
    """The digest `set_state` stores for `aggregates` under namespace `ns`."""
    return _agg_digest(ns, _agg_parts(aggregates))


def _agg_digest(ns: str, parts: dict[bytes, bytes]) -> bytes:
    """SHA-256 of the namespace and every part with its name (length-prefixed): a flipped bit,
    a renamed, lost or extra part, or a state copied from another namespace all change it."""
    h = hashlib.sha256(f"{PREFIX}:agg:{ns}".encode())
    for name in sorted(parts):
        h.update(b"%d:%s:%d:" % (len(name), name, len(parts[name])))
        h.update(parts[name])
    return h.hexdigest().encode()


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
