"""The secure rounds' binary forms (fedgrid_protocol.secagg.wire): one byte string per message,
anything else refused with ValueError; and a cycle whose devices see only their neighbours' keys
sums exactly."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from fedgrid_protocol.secagg import SecAggAggregator, SecAggDevice, SecAggParams, wire
from fedgrid_protocol.secagg.quantize import quantize

ENTRIES = {3: b"\x01\x02", 1: bytes(range(168)), 70000: b"\xff"}


def entry(index: int, value: bytes) -> bytes:
    return struct.pack(">qI", index, len(value)) + value


def test_entries_are_index_length_value_by_increasing_index_and_decode_back():
    data = wire.encode_entries(ENTRIES)
    assert data == entry(1, bytes(range(168))) + entry(3, b"\x01\x02") + entry(70000, b"\xff")
    assert wire.decode_entries(data) == ENTRIES
    assert wire.encode_entries({}) == b"" and wire.decode_entries(b"") == {}


def test_keys_are_c_then_s():
    c, s = bytes(range(32)), bytes(range(32, 64))
    assert wire.encode_keys(c, s) == c + s
    assert wire.decode_keys(c + s) == (c, s)
    for wrong in (c, c + s + b"\x00", b""):
        with pytest.raises(ValueError, match="64 bytes"):
            wire.decode_keys(wrong)


@pytest.mark.parametrize("data, reason", [
    (entry(1, b"ab")[:5], "cut short"),  # a header cut short
    (entry(1, b"ab")[:-1], "claims 2 bytes"),  # a value cut short
    (entry(1, b"ab") + b"\x00", "cut short"),  # a byte left over
    (entry(2, b"a") + entry(1, b"b"), "not above"),  # out of order
    (entry(2, b"a") + entry(2, b"b"), "not above"),  # twice
    (entry(0, b"a"), "not in 1..99999"),
    (entry(-1, b"a"), "not in 1..99999"),
    (entry(100000, b"a"), "not in 1..99999"),
    (struct.pack(">qI", 1, 0), "claims 0 bytes"),  # an empty value
    (struct.pack(">qI", 1, 2**32 - 1) + b"a", "claims 4294967295 bytes"),
    (b"".join(entry(i, b"a") for i in range(1, 1026)), "more than 1024"),
])
def test_anything_but_the_canonical_entries_is_refused(data, reason):
    with pytest.raises(ValueError, match=reason):
        wire.decode_entries(data)


def test_devices_that_see_only_their_neighbours_keys_make_the_same_exact_sum():
    params = SecAggParams()  # 20 devices: 10 neighbours each, so a neighbour roster is partial
    n, length = 20, 16
    devices = {i: SecAggDevice(params, rng=np.random.default_rng(i)) for i in range(1, n + 1)}
    xs = {i: np.random.default_rng(100 + i).normal(size=length) for i in devices}
    aggregator = SecAggAggregator(params, sorted(devices), length, random.Random(5))
    for i, device in devices.items():
        aggregator.receive_keys(i, *wire.decode_keys(wire.encode_keys(*device.advertise_keys())))
    roster, neighbours = aggregator.close_keys()
    for i, device in devices.items():
        own = {v: roster[v] for v in [i, *neighbours[i]]}
        assert len(own) < len(roster)
        boxes = device.share_keys(i, own, neighbours[i], advertised=len(roster))
        aggregator.receive_shares(i, wire.decode_entries(wire.encode_entries(boxes)))
    boxes = aggregator.close_shares()
    for i, device in devices.items():
        aggregator.receive_masked_input(i, device.masked_input(xs[i], boxes[i]))
    survivors, dropped = aggregator.close_masked_inputs()
    for i, device in devices.items():
        shares = device.unmask(survivors, dropped)
        aggregator.receive_unmask(i, wire.decode_entries(wire.encode_entries(shares)))
    total, count = aggregator.unmasked_sum()
    expected = sum(quantize(xs[i], params, np.random.default_rng(i)).astype(np.int64)
                   for i in devices)
    assert count == n and np.array_equal(total.astype(np.int64), expected)


def test_a_neighbour_roster_without_the_advertised_count_is_refused():
    params = SecAggParams()
    devices = {i: SecAggDevice(params) for i in range(1, 21)}
    roster = {i: device.advertise_keys() for i, device in devices.items()}
    neighbours = list(range(2, 12))  # 10 of 19: what 20 devices give each one
    own = {v: roster[v] for v in [1, *neighbours]}
    # Read as a cohort of 11, the 10 neighbours are too many: k would be 8.
    with pytest.raises(ValueError, match="neighbour list"):
        devices[1].share_keys(1, own, neighbours)
    with pytest.raises(ValueError, match="more devices than advertised"):
        devices[2].share_keys(2, own, neighbours, advertised=5)
