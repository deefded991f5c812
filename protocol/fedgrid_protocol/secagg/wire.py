"""The binary forms of the secure rounds' messages (docs/secure-aggregation.md, "Wire format").

A device sends each round's bytes as one binary field: an `application/octet-stream` body over
HTTP (the other fields in the query string) or one blob of a binary WebSocket frame.

- advertise-keys, `public_keys`: the c public key then the s public key, 32 + 32 bytes;
- share-keys, `boxes`, and unmask, `shares`: entries by strictly increasing device index, each
  the index (8 bytes, big-endian), the value's length (4 bytes, big-endian) and the value.

The entry layout is also the Node's stored form of these messages (a received message is stored
as it came), and `decode_entries` accepts only the canonical encoding: one message has one byte
string, so a resent message is recognised by its bytes. Standard library only: the Node, the
Python SDK and the conformance vector share it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

KEY_BYTES = 32
KEYS_BYTES = 2 * KEY_BYTES
ENTRY = struct.Struct(">qI")  # an entry's index and the length of its value
MAX_INDEX = 99_999  # a cohort index has at most five digits (events.CohortIndex)
MAX_ENTRIES = 1024  # events.MAX_NEIGHBOURS
MAX_VALUE_BYTES = 4096  # a share box is 168 bytes and a share 66: far above either


def encode_keys(c_public: bytes, s_public: bytes) -> bytes:
    if len(c_public) != KEY_BYTES or len(s_public) != KEY_BYTES:
        raise ValueError(f"public keys are {KEY_BYTES} bytes each")
    return bytes(c_public) + bytes(s_public)


def decode_keys(data: bytes) -> tuple[bytes, bytes]:
    """(c_public, s_public); ValueError unless `data` is exactly two 32-byte keys."""
    if len(data) != KEYS_BYTES:
        raise ValueError(f"keys are {KEYS_BYTES} bytes (c_public then s_public), not {len(data)}")
    data = bytes(data)
    return data[:KEY_BYTES], data[KEY_BYTES:]


def encode_entries(values: Mapping[int, bytes]) -> bytes:
    parts = []
    for index in sorted(values):
        value = bytes(values[index])
        if not 1 <= index <= MAX_INDEX:
            raise ValueError(f"device index {index} is out of range")
        parts.append(ENTRY.pack(index, len(value)) + value)
    return b"".join(parts)


def decode_entries(data: bytes) -> dict[int, bytes]:
    """Index -> value; ValueError for anything but the canonical encoding of a map (indices
    1..99999 strictly increasing, values 1..4096 bytes, no byte left over)."""
    data = bytes(data)
    entries: dict[int, bytes] = {}
    offset, previous = 0, 0
    while offset < len(data):
        if len(entries) == MAX_ENTRIES:
            raise ValueError(f"more than {MAX_ENTRIES} entries")
        if len(data) - offset < ENTRY.size:
            raise ValueError(f"entry at byte {offset} is cut short: its header is {ENTRY.size} bytes")
        index, length = ENTRY.unpack_from(data, offset)
        offset += ENTRY.size
        if not previous < index <= MAX_INDEX:
            raise ValueError(f"entry index {index} is not in 1..{MAX_INDEX} or not above the "
                             f"previous one ({previous})")
        if not 1 <= length <= MAX_VALUE_BYTES or length > len(data) - offset:
            raise ValueError(f"entry {index} claims {length} bytes; 1..{MAX_VALUE_BYTES} are "
                             f"allowed and {len(data) - offset} remain")
        entries[index] = data[offset:offset + length]
        offset += length
        previous = index
    return entries


__all__ = ["ENTRY", "KEYS_BYTES", "KEY_BYTES", "decode_entries", "decode_keys", "encode_entries",
           "encode_keys"]
