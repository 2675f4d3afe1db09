"""The lookup script (`_LOOKUP` in fsdsl/online/store.py): a lookup through links is one round
trip, the script finding each row's target key in the link's string and reading the values it
names. What is checked here is that this shortcut never changes a served value:

- the strings a refresh writes name the key texts `codec.key_text` writes, for any string or int
  (nulls: unlinked), and the script follows exactly those (hypothesis, on every real Redis here);
- a service served by the script, and by one round trip for the links then one for the views
  (`SCRIPT_ROWS` exceeded), give the same rows as the training query, keys that need escaping
  included;
- a damaged link string (its checksum fails) never leads to another entity's values, although
  the script, which cannot check checksums, followed it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_servers import flush, misdirect_link

from fsdsl import FeatureStore
from fsdsl.diagnostics import UsageError
from fsdsl.online import lookup as lookup_module
from fsdsl.online.codec import key_text
from fsdsl.online.store import PREFIX, OnlineStore, link_value

T0 = dt.datetime(2024, 5, 1)
DAY = dt.timedelta(days=1)

DEFS = """
entity user {
  key user_id: string
}

entity device {
  key device_id: string
}

source orders {
  table "orders"
  timestamp ts
  columns {
    user_id: string
    amount: float
    ts: timestamp
  }
}

source device_links {
  table "device_links"
  timestamp linked_at
  columns {
    device_id: string
    user_id: string
    linked_at: timestamp
  }
}

features spend {
  entity user
  from orders
  spend_7d = sum(amount) over 7d
  orders_7d = count(*) over 7d
}

features recent {
  entity user
  from orders
  last_amount = last(amount)
}

link device_owner {
  from device_links
  device -> user
}

service by_device {
  key device
  features spend.spend_7d, spend.orders_7d, recent.last_amount
}
"""

# user ids a JSON encoder must escape, or could escape differently: quotes, backslashes, control
# characters, a slash (escaped by some encoders, not by Python's), non-ASCII
USERS = ['u"q', "u\\b", "u\nl", "u\x01c", "u/s", "ü€😀", "plain", "u\x7fdel", "u\tt"]
DEVICES = [f"d{i}" for i in range(len(USERS))] + ["d_unlinked", "d_never"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lookup_script")
    (root / "defs").mkdir()
    (root / "defs" / "repo.feat").write_text(DEFS)
    (root / ".fsc").mkdir()
    con = duckdb.connect(str(root / ".fsc" / "warehouse.duckdb"))
    con.execute("CREATE TABLE orders (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)")
    con.execute(
        "CREATE TABLE device_links (device_id VARCHAR, user_id VARCHAR, linked_at TIMESTAMP)"
    )
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?)",
        [(u, float(i + 1), T0 - (i % 5 + 1) * DAY) for i, u in enumerate(USERS)]
        + [(u, 2.0 * i, T0 - DAY / 2) for i, u in enumerate(USERS[::2])],
    )
    links = [(f"d{i}", u, T0 - 10 * DAY) for i, u in enumerate(USERS)]
    links += [("d_unlinked", "plain", T0 - 9 * DAY), ("d_unlinked", None, T0 - 8 * DAY)]
    con.executemany("INSERT INTO device_links VALUES (?, ?, ?)", links)
    con.close()
    return root


def store(project: Path, url: str) -> FeatureStore:
    warehouse = f"duckdb:///{project / '.fsc' / 'warehouse.duckdb'}"
    return FeatureStore(project / "defs", warehouse=warehouse, online=url)


def served(rows: list[dict]) -> dict:
    return {
        r["device_id"]: (r["user_id"], r["spend_7d"], r["orders_7d"], r["last_amount"])
        for r in rows
    }


def counted_trips(monkeypatch) -> list[str]:
    """The round trips of the lookups that follow, by kind: `_pipeline` (a plain pipeline) or
    `_read_by_script` (the lookup script), one entry each."""
    trips: list[str] = []
    for name in ("_pipeline", "_read_by_script"):
        original = getattr(OnlineStore, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            trips.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(OnlineStore, name, counted)
    return trips


@pytest.fixture
def read_again(monkeypatch) -> list:
    """Counts the rows read a second time after the script followed a link the checked strings
    do not confirm (none, unless a link string is damaged)."""
    calls: list = []
    original = OnlineStore._read_again

    def counted(self, ns, rows, built, keys, link=False):
        calls.append(sum(a != b for a, b in zip(built, keys, strict=True)))
        return original(self, ns, rows, built, keys, link)

    monkeypatch.setattr(OnlineStore, "_read_again", counted)
    return calls


@pytest.mark.parametrize("server", ["embedded", "debian"])
def test_script_and_split_lookups_equal_training(project, redis_urls, server, read_again):
    if server not in redis_urls:
        pytest.skip("no Debian redis-server here (CI starts one: FSDSL_REDIS_URL)")
    url = redis_urls[server]
    flush(url)
    keys = [{"device_id": d} for d in DEVICES]
    with store(project, url) as fs:
        fs.run(at=T0)
        by_script = fs.online_features("by_device", keys, with_as_of=True, with_status=True)
        assert read_again == []  # every key text the script wrote was the one Python writes
        saved = lookup_module.SCRIPT_ROWS
        lookup_module.SCRIPT_ROWS = 0  # one round trip per link, then the views
        try:
            by_trips = fs.online_features("by_device", keys, with_as_of=True, with_status=True)
        finally:
            lookup_module.SCRIPT_ROWS = saved
        assert by_script == by_trips
        at = by_script[0]["_as_of"]
        labels = pa.table({"device_id": DEVICES, "event_timestamp": [at] * len(DEVICES)})
        trained = fs.training_set(labels, "by_device").to_pylist()
    assert served(by_script) == served(trained)
    got = served(by_script)
    assert [got[f"d{i}"][0] for i in range(len(USERS))] == USERS  # each resolved to its user
    assert got["d_unlinked"] == (None, None, 0, None)
    assert got["d_never"] == (None, None, 0, None)
    assert all(v[1] is not None for d, v in got.items() if d.startswith("d") and d[1:].isdigit())


@pytest.mark.parametrize("server", ["embedded", "debian"])
def test_each_way_of_reading_a_link_serves_the_same_rows(project, redis_urls, server, monkeypatch):
    """One link and views keyed by it: up to SCRIPT_ROWS rows, one EVALSHA of the lean script
    (`_LOOKUP_LINK`); past that, two pipelines (the link's strings by MGET, then the views under
    the texts they name, checked while the second is read). Both serve the rows of the generic
    script, which `with_as_of` takes (it reads the views' states with their values)."""
    if server not in redis_urls:
        pytest.skip("no Debian redis-server here (CI starts one: FSDSL_REDIS_URL)")
    url = redis_urls[server]
    flush(url)
    keys = [{"device_id": d} for d in DEVICES]
    scripts: list[str] = []
    original = OnlineStore._run_script

    def counted(self, script, buffer):
        scripts.append("lean" if script is self._lookup_link else "generic")
        return original(self, script, buffer)

    with store(project, url) as fs:
        fs.run(at=T0)
        generic = fs.online_features("by_device", keys, with_as_of=True, with_status=True)
        for row in generic:
            del row["_as_of"], row["_as_of_views"]
        monkeypatch.setattr(OnlineStore, "_run_script", counted)
        trips = counted_trips(monkeypatch)
        lean = fs.online_features("by_device", keys, with_status=True)
        assert (scripts, trips) == (["lean"], ["_read_by_script"])
        scripts.clear(), trips.clear()
        monkeypatch.setattr(lookup_module, "SCRIPT_ROWS", 0)
        two = fs.online_features("by_device", keys, with_status=True)
        assert (scripts, trips) == ([], ["_pipeline", "_pipeline"])
    assert lean == generic
    assert two == generic


def test_a_damaged_link_string_is_not_followed(project, redis_urls, read_again):
    """d0's link string is changed behind its checksum to name another user: the script reads
    that user's values, but the row is served as the damaged link it is (an unseen user, status
    `corrupt`), by the script and by separate round trips alike."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    keys = [{"device_id": "d0"}, {"device_id": "d6"}]
    with store(project, url) as fs:
        fs.run(at=T0)
        honest = fs.online_features("by_device", keys, with_status=True)
        assert served(honest)["d0"][0] == USERS[0]
        misdirect_link(client, "device_owner", ["d0"], ["plain"])
        rows = fs.online_features("by_device", keys, with_status=True)
        # the script followed d0 to `plain`: that row is set right in both of the user's views
        assert read_again == [1, 1]
        saved = lookup_module.SCRIPT_ROWS
        lookup_module.SCRIPT_ROWS = 0
        try:
            assert fs.online_features("by_device", keys, with_status=True) == rows
        finally:
            lookup_module.SCRIPT_ROWS = saved
        assert fs.online().corrupt_reads == 2  # once by each way
    got = served(rows)
    assert got["d0"] == (None, None, 0, None)  # not `plain`'s values
    assert got["d6"] == served(honest)["d6"] and got["d6"][0] == "plain"
    assert rows[0]["__status"]["device_owner"] == "corrupt"
    assert rows[0]["__status"]["spend"] == "missing"


# any text a key can hold (UTF-8: no lone surrogates), and any int a warehouse's BIGINT holds
TEXTS = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


TWO_KEYS = """
entity device {
  key device_id: string
}

entity account {
  key name: string, number: int
}

source links {
  table "links"
  timestamp ts
  columns {
    device_id: string
    name: string
    number: int
    ts: timestamp
  }
}

link device_account {
  from links
  device -> account
}
"""


@pytest.fixture(scope="module")
def two_keys():
    """The view of a link to a two-key target (a string and an int)."""
    from fsdsl.check import load_text

    repo, diagnostics = load_text(TWO_KEYS)
    assert repo is not None, diagnostics
    return repo.views["device_account"]


@pytest.mark.parametrize("server", ["embedded", "debian"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(st.one_of(st.none(), TEXTS), st.one_of(st.none(), INTS)), max_size=8)
)
def test_link_strings_name_key_texts_as_the_codec_does(redis_urls, server, two_keys, rows):
    """A refresh's rows of a link to a (string, int) target (either null: unlinked), written by
    the refresh's own encoder, then read by the script: each row's link string names
    `key_text([s, n])` (nothing when a part is null) under a checksum `link_value` agrees
    with, the script reads the values under exactly that key, and the text decodes back to the
    values."""
    if server not in redis_urls:
        pytest.skip("no Debian redis-server here (CI starts one: FSDSL_REDIS_URL)")
    from fsdsl.online.codec import key_values
    from fsdsl.online.refresh import _batch_commands

    online = OnlineStore(redis_urls[server])
    client = online.client
    ns = "fsdsl-test-script"
    devices = [f"d{i}" for i in range(len(rows))]
    batch = pa.record_batch(
        {
            "device_id": pa.array(devices, pa.string()),
            "unlinked": pa.array([int(s is None or n is None) for s, n in rows], pa.int64()),
            "name": pa.array([s if n is not None else None for s, n in rows], pa.string()),
            "number": pa.array([n if s is not None else None for s, n in rows], pa.int64()),
        }
    )
    linked = [key_text([s, n]) if s is not None and n is not None else "" for s, n in rows]
    commands = _batch_commands(two_keys, batch, "", ns, in_place=True)
    try:
        online.send_commands(commands.pieces, commands.count, transaction=True)
        for text in {t for t in linked if t}:  # a string where each linked row's target is
            client.set(OnlineStore.entity_key(ns, text), text)
        texts = [key_text([d]) for d in devices]
        # two reads: the link's strings (group 1, given), then values under the keys it made
        spec = [len(rows), 1, 2]
        spec += ["", f"{PREFIX}:r:{ns}:", 1, 1, "", f"{PREFIX}:v:{ns}:", 2, 0]
        reply = online._lookup(args=spec + texts)
        # the lean script (one link, views under its keys) reads the same, in one flat list
        lean = online._lookup_link(args=[f"{PREFIX}:r:{ns}:", 1, f"{PREFIX}:v:{ns}:", *texts])
    finally:
        for pattern in (f"{PREFIX}:r:{ns}:*", f"{PREFIX}:v:{ns}:*"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)
        online.close()
    strings, values = (reply[0], reply[1]) if rows else ([], [])
    assert (lean[::2], lean[1::2]) == (strings, values)
    names = [s.split(b":", 1)[1].decode() if s else "" for s in strings]
    assert names == linked  # the unlinked rows hold "" (no values of theirs are read)
    # Arrow's encoder and the one `write_batch` uses give the same strings, checksums included
    assert strings == [link_value(ns, t, target) for t, target in zip(texts, linked, strict=True)]
    found = [v.decode() if v else "" for v in values]
    assert found == linked
    types = [k.type for k in two_keys.features[1:]]
    for (s, n), text in zip(rows, linked, strict=True):
        if text:
            assert key_values(text, types) == [s, n]


CHAIN = """
entity user {
  key user_id: string
}

entity device {
  key device_id: string
}

entity household {
  key household_id: int
}

source device_links {
  table "device_links"
  timestamp linked_at
  columns {
    device_id: string
    user_id: string
    linked_at: timestamp
  }
}

source user_households {
  table "user_households"
  timestamp moved_at
  columns {
    user_id: string
    household_id: int
    moved_at: timestamp
  }
}

source bills {
  table "bills"
  timestamp ts
  columns {
    household_id: int
    amount: float
    ts: timestamp
  }
}

features household_bills {
  entity household
  from bills
  bills_30d = sum(amount) over 30d
  bills = count(*)
}

link device_owner {
  from device_links
  device -> user
}

link user_household {
  from user_households
  user -> household
}

service by_device {
  key device
  features household_bills.bills_30d, household_bills.bills
}
"""


def test_a_chain_is_two_round_trips_at_most(tmp_path, redis_urls, monkeypatch):
    """device -> user -> household (an int key): one round trip up to SCRIPT_ROWS rows, two past
    it (the script resolving both links, then the views), the same rows either way."""
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "repo.feat").write_text(CHAIN)
    (tmp_path / ".fsc").mkdir()
    db = tmp_path / ".fsc" / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE device_links (device_id VARCHAR, user_id VARCHAR, linked_at TIMESTAMP)"
    )
    con.execute(
        "CREATE TABLE user_households (user_id VARCHAR, household_id BIGINT, moved_at TIMESTAMP)"
    )
    con.execute("CREATE TABLE bills (household_id BIGINT, amount DOUBLE, ts TIMESTAMP)")
    users = ['a"b', "c\\d", "plain", "é"]
    con.executemany(
        "INSERT INTO device_links VALUES (?, ?, ?)",
        [(f"d{i}", u, T0 - 5 * DAY) for i, u in enumerate(users)]
        + [("d_lost", "nobody", T0 - DAY)],
    )
    con.executemany(
        "INSERT INTO user_households VALUES (?, ?, ?)",
        [(u, -(2**40) - i if i % 2 else i, T0 - 4 * DAY) for i, u in enumerate(users)],
    )
    con.executemany(
        "INSERT INTO bills VALUES (?, ?, ?)",
        [(-(2**40) - i if i % 2 else i, 10.0 * (i + 1), T0 - DAY) for i in range(len(users))],
    )
    con.close()
    trips = counted_trips(monkeypatch)
    url = redis_urls["embedded"]
    flush(url)
    keys = [{"device_id": d} for d in (*(f"d{i}" for i in range(len(users))), "d_lost", "d_none")]
    with FeatureStore(tmp_path / "defs", warehouse=f"duckdb:///{db}", online=url) as fs:
        fs.run(at=T0)
        fs.online_features("by_device", keys)  # the definitions read and cached
        trips.clear()
        one = fs.online_features("by_device", keys)
        assert trips == ["_read_by_script"]
        monkeypatch.setattr(lookup_module, "SCRIPT_ROWS", 0)
        trips.clear()
        two = fs.online_features("by_device", keys)
        assert trips == ["_read_by_script", "_pipeline"]
        at = fs.online_features("by_device", keys[:1], with_as_of=True)[0]["_as_of"]
        labels = pa.table(
            {"device_id": [k["device_id"] for k in keys], "event_timestamp": [at] * len(keys)}
        )
        trained = fs.training_set(labels, "by_device").to_pylist()
    assert one == two
    got = [(r["user_id"], r["household_id"], r["bills_30d"], r["bills"]) for r in one]
    assert got == [(r["user_id"], r["household_id"], r["bills_30d"], r["bills"]) for r in trained]
    assert got[:4] == [
        (u, -(2**40) - i if i % 2 else i, 10.0 * (i + 1), 1) for i, u in enumerate(users)
    ]
    assert got[4:] == [("nobody", None, None, 0), (None, None, None, 0)]


def test_a_link_never_refreshed_is_the_usual_error(project, redis_urls):
    """The views refreshed, the link not: E0508 naming the link, by the script's path and the
    split one (no reply of the script is read for a link that is not served)."""
    url = redis_urls["embedded"]
    flush(url)
    with store(project, url) as fs:
        fs.run(at=T0, views=["spend", "recent"])
        for rows in (1, 40):  # within SCRIPT_ROWS, and past it
            with pytest.raises(UsageError) as err:
                fs.online_features("by_device", [{"device_id": "d0"}] * rows)
            assert err.value.code == "E0508" and "`device_owner`" in str(err.value)


DATE_KEYED = CHAIN.replace("key household_id: int", "key household_id: date").replace(
    "household_id: int", "household_id: date"
)


def test_a_date_keyed_target_is_resolved_in_the_same_trip(tmp_path, redis_urls, monkeypatch):
    """A link to an entity keyed by a date: its strings hold the key text, so the script
    resolves device -> user -> household in the one trip; the rows equal the training
    query's."""
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "repo.feat").write_text(DATE_KEYED)
    (tmp_path / ".fsc").mkdir()
    db = tmp_path / ".fsc" / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE device_links (device_id VARCHAR, user_id VARCHAR, linked_at TIMESTAMP)"
    )
    con.execute(
        "CREATE TABLE user_households (user_id VARCHAR, household_id DATE, moved_at TIMESTAMP)"
    )
    con.execute("CREATE TABLE bills (household_id DATE, amount DOUBLE, ts TIMESTAMP)")
    con.execute(
        "INSERT INTO device_links VALUES ('d1', 'u1', ?), ('d2', 'u2', ?)", [T0 - DAY, T0 - DAY]
    )
    con.execute(
        "INSERT INTO user_households VALUES "
        "('u1', DATE '2024-01-02', ?), ('u2', DATE '2023-12-31', ?)",
        [T0 - DAY, T0 - DAY],
    )
    con.execute(
        "INSERT INTO bills VALUES (DATE '2024-01-02', 5.0, ?), (DATE '2023-12-31', 7.0, ?)",
        [T0 - DAY, T0 - DAY],
    )
    con.close()
    trips = counted_trips(monkeypatch)
    url = redis_urls["embedded"]
    flush(url)
    keys = [{"device_id": "d1"}, {"device_id": "d2"}, {"device_id": "d3"}]
    with FeatureStore(tmp_path / "defs", warehouse=f"duckdb:///{db}", online=url) as fs:
        fs.run(at=T0)
        fs.online_features("by_device", keys)
        trips.clear()
        rows = fs.online_features("by_device", keys)
        assert trips == ["_read_by_script"]
        labels = pa.table({"device_id": ["d1", "d2", "d3"], "event_timestamp": [T0] * 3})
        trained = fs.training_set(labels, "by_device").to_pylist()
    got = [(r["household_id"], r["bills_30d"], r["bills"]) for r in rows]
    assert got == [(r["household_id"], r["bills_30d"], r["bills"]) for r in trained]
    assert got == [(dt.date(2024, 1, 2), 5.0, 1), (dt.date(2023, 12, 31), 7.0, 1), (None, None, 0)]


def test_a_large_lookup_is_made_of_short_ones(project, redis_urls, monkeypatch):
    """Past CHUNK_ROWS rows a lookup is several (Redis never held long by one script or
    MULTI/EXEC): the rows are those of one lookup, in order, each with its part's as-of time."""
    url = redis_urls["embedded"]
    flush(url)
    keys = [{"device_id": d} for d in DEVICES * 3]
    with store(project, url) as fs:
        fs.run(at=T0)
        whole = fs.online_features("by_device", keys, with_as_of=True, with_status=True)
        scripts: list[int] = []
        original = OnlineStore._run_lookup

        def counted(self, args):
            scripts.append(int(args[0]))  # the rows of each script
            return original(self, args)

        monkeypatch.setattr(OnlineStore, "_run_lookup", counted)
        monkeypatch.setattr(lookup_module, "CHUNK_ROWS", 5)
        parts = fs.online_features("by_device", keys, with_as_of=True, with_status=True)
    assert parts == whole
    assert scripts == [5] * (len(keys) // 5) + ([len(keys) % 5] if len(keys) % 5 else [])


def test_link_strings_go_with_their_namespace(project, redis_urls):
    """A full refresh writes the link's strings into its new namespace; once the old one is
    dropped, none of its strings is left behind."""
    url = redis_urls["embedded"]
    flush(url)
    client = redis.Redis.from_url(url)
    with store(project, url) as fs:
        fs.run(at=T0)
        old = client.hget(f"{PREFIX}:state:device_owner", "ns").decode()
        stored = len(list(client.scan_iter(match=f"{PREFIX}:r:{old}:*")))
        assert stored == len(USERS) + 1  # every device but the never-seen one (d_unlinked: "")
        fs.run(at=T0 + DAY, full=True)
        new = client.hget(f"{PREFIX}:state:device_owner", "ns").decode()
        assert new != old
        assert len(list(client.scan_iter(match=f"{PREFIX}:r:{new}:*"))) == stored
        fs.online().drop_retired(wait=True)
        assert list(client.scan_iter(match=f"{PREFIX}:r:{old}:*")) == []
        rows = fs.online_features("by_device", [{"device_id": "d0"}])
    assert rows[0]["user_id"] == USERS[0]


def test_a_link_string_that_is_not_utf8_is_damaged_even_unchecked(redis_urls):
    """With checksums off (a benchmark's switch), a string whose text is not UTF-8 is still
    served as damaged, never an error of the whole lookup."""
    online = OnlineStore(redis_urls["embedded"])
    try:
        online.verify_checksums = False
        found, damaged = online._checked_links(
            "device_owner", "ns", ['["d0"]', '["d1"]'], [b"1:\xff", b'2:["u"]']
        )
    finally:
        online.close()
    assert (found, damaged) == ([None, '["u"]'], [0])
