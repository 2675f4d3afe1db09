"""Redis as the online store: layout, run state, batched writes and one-round-trip lookups.

Layout (one namespace per view, definition fingerprint and full-refresh generation):

    fsdsl:state:{view}       hash: ns, fp, as_of, watermark, refreshed_at  (what is serving)
    fsdsl:v:{ns}:{key}       hash: one field per feature (nulls absent) + "__" marker
    fsdsl:empty:{ns}         hash: the values of an entity with no visible event
    fsdsl:lock:{view}        a run in progress

A full refresh (first run, `--full`, or a changed definition) writes a new namespace and switches
`state` to it only when every write succeeded; incremental runs write in place and advance
`state` last. A lookup runs one server-side script: it reads `state`, checks that the serving
definition is the caller's, and fetches every entity's fields, in a single round trip.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Iterable
from typing import Any

from fsdsl.diagnostics import UsageError

PREFIX = "fsdsl"
LOCK_SECONDS = 120
MARKER = "__"

# ARGV: n_views, then per view: view, fp, n_fields, fields..., n_keys, keys...
# Reply: per view: false (not served for this definition) or [empty, values per key].
LOOKUP = """
local out = {}
local i = 1
local n_views = tonumber(ARGV[i]); i = i + 1
for v = 1, n_views do
  local view, fp, nf = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]); i = i + 3
  local fields = {'__'}
  for f = 1, nf do fields[#fields + 1] = ARGV[i]; i = i + 1 end
  local nk = tonumber(ARGV[i]); i = i + 1
  local state = redis.call('HMGET', 'fsdsl:state:' .. view, 'fp', 'ns')
  if state[1] ~= fp then
    out[#out + 1] = false
    i = i + nk
  else
    local rows = {redis.call('HMGET', 'fsdsl:empty:' .. state[2], unpack(fields))}
    for k = 1, nk do
      rows[#rows + 1] = redis.call('HMGET', 'fsdsl:v:' .. state[2] .. ':' .. ARGV[i],
                                   unpack(fields))
      i = i + 1
    end
    out[#out + 1] = rows
  end
end
return out
"""


def redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


class OnlineStore:
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
        kwargs: dict[str, Any] = {
            "socket_connect_timeout": 5,
            "socket_timeout": 60,
            "health_check_interval": 0,
        }
        if not urllib.parse.urlsplit(url).password and os.environ.get("FSC_REDIS_PASSWORD"):
            kwargs["password"] = os.environ["FSC_REDIS_PASSWORD"]
        try:
            self.client = redis.Redis.from_url(url, **kwargs)
        except ValueError as e:
            raise UsageError(f"bad online store URL `{redacted(url)}`: {e}", "E0502") from None
        self._lookup = None

    # ---- errors ----
    def check(self) -> None:
        """Fail early, with one line, when the store is unreachable or refuses us."""
        with self.errors():
            self.client.ping()

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

    def set_state(self, view: str, state: dict[str, str]) -> None:
        with self.errors():
            self.client.hset(f"{PREFIX}:state:{view}", mapping=state)

    def lock(self, view: str, owner: str, seconds: int = LOCK_SECONDS) -> bool:
        """Take the view's run lock. Its value names host and process, so a lock left by a run
        that died on this machine is taken over at once; one left elsewhere expires (a live
        run keeps extending it with `keep_lock`)."""
        key = f"{PREFIX}:lock:{view}"
        value = f"{socket.gethostname()}:{os.getpid()}:{owner}"
        with self.errors():
            if self.client.set(key, value, nx=True, ex=seconds):
                return True
            held = (self.client.get(key) or b"").decode()
            host, _, rest = held.partition(":")
            pid = rest.partition(":")[0]
            if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
                pipe = self.client.pipeline(transaction=True)
                pipe.delete(key)
                pipe.set(key, value, nx=True, ex=seconds)
                return bool(pipe.execute()[1])
            return False

    def keep_lock(self, view: str, seconds: int = LOCK_SECONDS) -> None:
        with self.errors():
            self.client.expire(f"{PREFIX}:lock:{view}", seconds)

    def unlock(self, view: str, owner: str) -> None:
        with self.errors():
            key = f"{PREFIX}:lock:{view}"
            if (self.client.get(key) or b"").decode().endswith(f":{owner}"):
                self.client.delete(key)

    # ---- writes ----
    @staticmethod
    def entity_key(ns: str, key_text: str) -> str:
        return f"{PREFIX}:v:{ns}:{key_text}"

    def write_empty(self, ns: str, fields: dict[str, str]) -> None:
        key = f"{PREFIX}:empty:{ns}"
        with self.errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.hset(key, mapping={MARKER: "1", **fields})
            pipe.execute()

    def write_batch(
        self, ns: str, puts: Iterable[tuple[str, dict[str, str]]], deletes: Iterable[str]
    ) -> None:
        """Replace the hashes of `puts`, remove those of `deletes`; one MULTI/EXEC, so a reader
        never sees an entity half-written."""
        with self.errors():
            pipe = self.client.pipeline(transaction=True)
            for key_text, fields in puts:
                key = self.entity_key(ns, key_text)
                pipe.delete(key)
                pipe.hset(key, mapping={MARKER: "1", **fields})
            for key_text in deletes:
                pipe.delete(self.entity_key(ns, key_text))
            pipe.execute()

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

    # ---- reads ----
    def lookup(self, requests: list[tuple[str, str, list[str], list[str]]]) -> list:
        """[(view, fp, fields, key_texts)] -> per view None or (empty, [values per key])."""
        if self._lookup is None:
            self._lookup = self.client.register_script(LOOKUP)
        args: list[Any] = [len(requests)]
        for view, fp, fields, keys in requests:
            args += [view, fp, len(fields), *fields, len(keys), *keys]
        with self.errors():
            reply = self._lookup(args=args)
        out = []
        for part in reply:
            if not part:
                out.append(None)
            else:
                out.append((part[0], part[1:]))
        return out

    def close(self) -> None:
        self.client.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
