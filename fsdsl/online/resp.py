"""Redis commands for a whole batch of entities, encoded by Arrow in one pass.

A refresh writes tens of thousands of entities. Packing each `SET` through redis-py costs more
than Redis takes to execute it, so the batch is written in the protocol (RESP) directly: every
bulk string (`$<bytes>\\r\\n<value>\\r\\n`) of a column is built by Arrow's string kernels, a
row's command is the concatenation of its pieces, and the batch is one buffer sent at once.
"""

from __future__ import annotations

import struct
from itertools import pairwise
from zlib import crc32

import pyarrow as pa
import pyarrow.compute as pc

from fsdsl.online.codec import flat, lit

CRLF = lit("\r\n")


def bulk(text: str | bytes) -> bytes:
    return b"".join(_bulk_pieces(text))


def command(*args: str | bytes) -> bytes:
    """One command in RESP: one %-format per argument (the lookups encode theirs per call;
    joining `command_pieces` cost a one-key lookup 40 µs)."""
    data = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(data) + b"".join([b"$%d\r\n%s\r\n" % (len(d), d) for d in data])


def command_pieces(*args: str | bytes) -> list[bytes]:
    """`command`'s bytes in pieces, each argument's value one of them as given: joining the
    pieces of several commands at once copies a large value (an aggregate state of megabytes)
    once, where `%`-formatting it into its bulk string and that into its command costs
    milliseconds each."""
    return [b"*%d\r\n" % len(args), *(p for a in args for p in _bulk_pieces(a))]


def _bulk_pieces(text: str | bytes) -> tuple[bytes, bytes, bytes]:
    data = text.encode() if isinstance(text, str) else text
    return b"$%d\r\n" % len(data), data, b"\r\n"


def _bulks(values: pa.Array) -> pa.Array:
    """Each value as a bulk string; nulls stay null."""
    lengths = pc.cast(pc.binary_length(values), pa.string())
    return pc.binary_join_element_wise(lit("$"), lengths, CRLF, values, CRLF, lit(""))


def _joined(pieces: list) -> pa.Array:
    return pc.binary_join_element_wise(
        *[lit(p) if isinstance(p, str) else p for p in pieces], lit("")
    )


def _buffer(rows: pa.Array) -> bytes:
    """The concatenation of a string array's values (no nulls): its data buffer, sliced."""
    rows = flat(rows)
    if len(rows) == 0:
        return b""
    offsets = rows.buffers()[1]
    width = 8 if pa.types.is_large_string(rows.type) else 4
    first = int.from_bytes(offsets[rows.offset * width : (rows.offset + 1) * width], "little")
    end = rows.offset + len(rows)
    last = int.from_bytes(offsets[end * width : (end + 1) * width], "little")
    return rows.buffers()[2].to_pybytes()[first:last]


def checksums(keys: pa.Array, fields: dict[str, pa.Array]) -> pa.Array:
    """Each row's checksum (`checksum.py`) in decimal, for fields in canonical order: Arrow
    builds each row's signed text (key, present names, their values); Arrow has no CRC kernel,
    so `crc32` is one call per row on slices of that column's data buffer."""
    names = [pc.if_else(pc.is_valid(v), lit(name), lit("")) for name, v in fields.items()]
    signed = flat(_joined([keys, *names, *[pc.fill_null(v, lit("")) for v in fields.values()]]))
    kind = "q" if pa.types.is_large_string(signed.type) else "i"
    start = signed.offset
    offsets = memoryview(signed.buffers()[1]).cast(kind)[start : start + len(signed) + 1]
    data = memoryview(signed.buffers()[2] or b"")
    crcs = [crc32(data[a:b]) for a, b in pairwise(offsets)]
    packed = pa.py_buffer(struct.pack(f"<{len(crcs)}I", *crcs))
    return pc.cast(pa.Array.from_buffers(pa.uint32(), len(crcs), [None, packed]), pa.string())


def signed(keys: pa.Array, texts: pa.Array) -> pa.Array:
    """Strings to store as "{checksum}:{text}", the checksum CRC-32 of each one's Redis key then
    its text: an entity's values and a link's string (`store.entity_value`, `link_value`)."""
    return pc.binary_join_element_wise(checksums(keys, {"": texts}), lit(":"), texts, lit(""))


def set_rows(keys: pa.Array, values: pa.Array) -> tuple[bytes, int]:
    """`SET key value` per row (no nulls): (buffer, commands)."""
    if len(keys) == 0:
        return b"", 0
    head = lit("*3\r\n" + bulk("SET").decode())
    return _buffer(_joined([head, _bulks(keys), _bulks(values)])), len(keys)


def del_rows(keys: pa.Array) -> tuple[bytes, int]:
    """One `DEL` of all the keys: (buffer, commands)."""
    if len(keys) == 0:
        return b"", 0
    return b"*%d\r\n" % (len(keys) + 1) + bulk("DEL") + _buffer(_bulks(keys)), 1
