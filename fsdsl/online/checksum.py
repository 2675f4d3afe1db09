"""The checksum each stored hash carries (a view's serving state, its empty values, the applied
definitions), so that a value changed after it was written (a bit flipped on disk, a damaged
append-only file replayed) is never used. Entities' values and links' strings carry theirs as a
prefix of the string (`store.entity_value`, `resp.signed`): CRC-32 of the key, then the text.

A hash's is CRC-32 (zlib) of its Redis key, then its field names in the order of their bytes,
then their values in the same order, the checksum's own field left out: it covers what the hash
is for (a damaged key would move values to another view or namespace) and every stored byte, and
CRC-32 detects any change of up to 32 consecutive bits, so any changed byte. It is the value, in
decimal, of the marker field every hash has, written last.

Writers put the fields in that order; Redis keeps a small hash (a listpack) in insertion order
and the client receives it as a dict in that order, so a reader checks a hash as it arrives,
with one join and one `crc32` call, and sorts only when that fails (a hash Redis converted to a
hash table, or a damaged one).
"""

from __future__ import annotations

from collections.abc import Mapping
from zlib import crc32

MARKER = "__"  # the field every stored hash has; its value is the checksum
_MARKER = MARKER.encode()


def digest(key_crc: int, fields: Mapping[bytes, bytes]) -> int:
    """The checksum of a hash's fields (the marker excluded), in canonical order, given
    `crc32(redis key)`."""
    names = sorted(fields)
    return crc32(b"".join([*names, *[fields[n] for n in names]]), key_crc)


def fields_with_checksum(key: str, fields: Mapping[str, str]) -> dict[str, str]:
    """A hash to write with redis-py: the fields in canonical order, then the checksum."""
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    return {**dict(sorted(fields.items())), MARKER: str(digest(crc32(key.encode()), raw))}


def verified(key_crc: int, row: dict[bytes, bytes]) -> dict[bytes, bytes] | None:
    """A hash read back (non-empty) without its checksum field, when the checksum holds; else
    None (a hash without one is damaged too). `key_crc` is `crc32(redis key)`."""
    stored = row.pop(_MARKER, None)
    if stored is None:
        return None
    # compared as bytes, not int(): int() would take " 12" or "1_2" for a checksum
    if b"%d" % crc32(b"".join([*row, *row.values()]), key_crc) == stored:
        return row
    return row if b"%d" % digest(key_crc, row) == stored else None
