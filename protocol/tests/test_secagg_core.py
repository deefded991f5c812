"""Secure aggregation, the pure protocol: the sum comes out exact through dropouts, the Node's
side never holds an individual update, and the byte-level spec is pinned for other SDKs."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedgrid_protocol.secagg import (
    SecAggAborted,
    SecAggAggregator,
    SecAggDevice,
    SecAggParams,
    crypto,
    shamir,
)
from fedgrid_protocol.secagg.quantize import dequantize_sum, quantize, step

LENGTH = 24
STAGES = ("advertise", "share", "masked_input", "unmask")


def updates(n: int, scale: float = 1.0) -> dict[int, np.ndarray]:
    return {i: np.random.default_rng(1000 + i).normal(scale=scale, size=LENGTH) for i in
            range(1, n + 1)}


def run_cycle(params: SecAggParams, xs: dict[int, np.ndarray], drops: dict[int, str],
              graph_seed: int = 0):
    """One secure cycle; device i leaves before the round named in drops[i]. Returns the
    aggregator, the sum, the count, the expected integer sum and every masked input sent."""
    devices = {i: SecAggDevice(params, rng=np.random.default_rng(i)) for i in xs}

    def present(stage: str) -> list[int]:
        return [i for i in devices if i not in drops or STAGES.index(drops[i]) > STAGES.index(stage)]

    aggregator = SecAggAggregator(params, sorted(devices), LENGTH, random.Random(graph_seed))
    for i in present("advertise"):
        aggregator.receive_keys(i, *devices[i].advertise_keys())
    roster, neighbours = aggregator.close_keys()
    for i in present("share"):
        aggregator.receive_shares(i, devices[i].share_keys(i, roster, neighbours[i]))
    boxes = aggregator.close_shares()
    sent = {}
    for i in present("masked_input"):
        sent[i] = devices[i].masked_input(xs[i], boxes[i])
        aggregator.receive_masked_input(i, sent[i])
    survivors, dropped = aggregator.close_masked_inputs()
    for i in present("unmask"):
        aggregator.receive_unmask(i, devices[i].unmask(survivors, dropped))
    # Each device's rng drew only its quantisation: the same seed redraws the same integers.
    quantised = {i: quantize(xs[i], params, np.random.default_rng(i)) for i in survivors}
    expected = sum(q.astype(np.int64) for q in quantised.values())
    total, count = aggregator.unmasked_sum()
    return aggregator, total, count, expected, survivors, sent, quantised


def test_the_sum_of_a_full_cycle_is_exact_and_dequantises_within_the_rounding():
    params = SecAggParams()
    xs = updates(10)
    _, total, count, expected, survivors, _, _ = run_cycle(params, xs, {})
    assert count == 10 and survivors == list(range(1, 11))
    assert np.array_equal(total.astype(np.int64), expected)
    plain = sum(xs.values())
    result = dequantize_sum(total, count, params)
    assert np.abs(result - plain).max() <= count * step(params)


def _scenarios(n: int, tolerance: int, rng: random.Random, *, exhaustive: bool):
    """Sets of up to `tolerance` devices dropping all before one round (every such set when
    `exhaustive`, else a sample), then sets dropping before different rounds."""
    for size in range(1, tolerance + 1):
        for stage in STAGES:
            for subset in itertools.combinations(range(1, n + 1), size):
                if exhaustive or size == 1 or rng.random() < 0.15:
                    yield {i: stage for i in subset}
    for _ in range(100):
        subset = rng.sample(range(1, n + 1), rng.randint(1, tolerance))
        yield {i: rng.choice(STAGES) for i in subset}


@pytest.mark.parametrize("num_shares", [1.0, None], ids=["complete-graph", "sparse-graph"])
def test_any_dropouts_within_the_tolerance_leave_the_sum_of_the_survivors_exact(num_shares):
    # A device holds no share of its own secrets: each neighbourhood tolerates k - t devices
    # lost over the cycle (on the complete graph, n - 1 - t = 4 of 10; one more aborts, below).
    n = 10
    params = SecAggParams(num_shares=num_shares)
    k, t = params.degree(n), params.threshold(n)
    assert (k, t) == ((9, 5) if num_shares == 1.0 else (8, 5))
    xs = updates(n)
    rng = random.Random(7)
    runs = 0
    for drops in _scenarios(n, k - t, rng, exhaustive=num_shares == 1.0):
        try:
            _, total, count, expected, survivors, _, _ = run_cycle(params, xs, drops, runs)
        except (SecAggAborted, ValueError) as exc:
            # On the sparse graph a device's k - t tolerance is about its own neighbours: drops
            # spread over the whole cohort may still sink one neighbourhood below t.
            assert num_shares is None, (drops, exc)
            continue
        runs += 1
        late = {i for i, stage in drops.items() if stage == "unmask"}
        assert set(survivors) == set(range(1, n + 1)) - (set(drops) - late)
        assert count == len(survivors)
        assert np.array_equal(total.astype(np.int64), expected), drops
        plain = sum(xs[i] for i in survivors)
        assert np.abs(dequantize_sum(total, count, params) - plain).max() <= count * step(params)
    assert runs > 100


def test_too_many_dropouts_abort_instead_of_revealing_anything():
    params = SecAggParams(num_shares=1.0)  # k = 9, t = 5: at most 4 may drop
    xs = updates(10)
    with pytest.raises(SecAggAborted) as caught:
        run_cycle(params, xs, {i: "unmask" for i in range(1, 6)})
    assert caught.value.code == "secagg_aborted"


def test_the_node_side_holds_no_individual_update_masked_or_not():
    params = SecAggParams()
    xs = updates(10)
    aggregator, total, *_rest, sent, quantised = run_cycle(params, xs, {3: "masked_input",
                                                                        5: "unmask"})
    forbidden = [np.frombuffer(data, "<u4") for data in sent.values()] + list(quantised.values())
    held = []

    def walk(value):
        if isinstance(value, np.ndarray):
            held.append(value)
        elif isinstance(value, bytes | bytearray):
            if len(value) == 4 * LENGTH:
                held.append(np.frombuffer(value, "<u4"))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                walk(item)

    walk(vars(aggregator))
    assert any(array.shape == (LENGTH,) for array in held), "the walk found not even the sum"
    for array in held:
        for individual in forbidden:
            assert not np.array_equal(array.astype(np.int64), individual.astype(np.int64))


def test_a_device_never_gives_both_secrets_of_one_neighbour():
    params = SecAggParams(num_shares=1.0)
    devices = {i: SecAggDevice(params) for i in range(1, 5)}
    aggregator = SecAggAggregator(params, list(devices), LENGTH)
    for i, device in devices.items():
        aggregator.receive_keys(i, *device.advertise_keys())
    roster, neighbours = aggregator.close_keys()
    for i, device in devices.items():
        aggregator.receive_shares(i, device.share_keys(i, roster, neighbours[i]))
    boxes = aggregator.close_shares()
    devices[1].masked_input(np.zeros(LENGTH), boxes[1])
    with pytest.raises(ValueError, match="both survived and dropped"):
        devices[1].unmask([1, 2, 3, 4], [2])


def test_a_device_refuses_a_neighbour_list_that_contradicts_the_parameters():
    params = SecAggParams()  # 10 devices: 8 neighbours each
    devices = {i: SecAggDevice(params) for i in range(1, 11)}
    roster = {i: device.advertise_keys() for i, device in devices.items()}
    with pytest.raises(ValueError, match="neighbour list"):
        devices[1].share_keys(1, roster, [2, 3])  # too few: the Node would need fewer shares


def test_a_share_box_altered_by_the_node_does_not_open():
    key = bytes(32)
    box = crypto.seal(key, 1, 2, b"secret share")
    assert crypto.open_box(key, 1, 2, box) == b"secret share"
    with pytest.raises(ValueError):
        crypto.open_box(key, 3, 2, box)  # passed off as another sender's
    with pytest.raises(ValueError):
        crypto.open_box(key, 1, 2, box[:-1] + bytes([box[-1] ^ 1]))


def test_shamir_any_threshold_shares_rebuild_the_secret_and_fewer_do_not():
    secret = bytes(range(32))
    shares = shamir.split(secret, [1, 2, 3, 4, 5, 6, 7], 4)
    for subset in itertools.combinations(shares, 4):
        assert shamir.combine({x: shares[x] for x in subset}, 4) == secret
    with pytest.raises(ValueError):
        shamir.combine({x: shares[x] for x in (1, 2, 3)}, 4)
    assert all(len(share) == shamir.SHARE_BYTES for share in shares.values())


def test_the_mask_prg_is_aes_ctr_from_a_zero_counter_read_little_endian():
    # The spec another SDK reproduces: block j of the keystream is AES-256(seed, j as 16 bytes
    # big-endian), read as little-endian uint32 words.
    seed = bytes(range(32))
    words = crypto.mask(seed, 8, 2**32)
    ecb = Cipher(algorithms.AES(seed), modes.ECB()).encryptor()
    blocks = ecb.update((0).to_bytes(16, "big") + (1).to_bytes(16, "big")) + ecb.finalize()
    assert words.tolist() == np.frombuffer(blocks, "<u4").tolist()
    assert np.array_equal(crypto.mask(seed, 8, 2**16), words & 0xFFFF)


def test_the_pairwise_seed_is_the_same_at_both_ends():
    a, b = crypto.KeyPair(), crypto.KeyPair()
    assert a.agree(b.public, crypto.MASK_INFO) == b.agree(a.public, crypto.MASK_INFO)
    assert a.agree(b.public, crypto.MASK_INFO) != a.agree(b.public, crypto.SHARE_KEY_INFO)
    assert crypto.KeyPair(a.private).public == a.public


def test_quantisation_clips_stays_in_range_and_is_unbiased():
    params = SecAggParams(clipping_range=1.0, quantization_range=2**8)
    rng = np.random.default_rng(0)
    q = quantize(np.array([-5.0, -1.0, 0.0, 1.0, 5.0]), params, rng)
    assert q.tolist() == [0, 0, q[2], 255, 255] and 127 <= q[2] <= 128
    value = np.full(20000, 0.3)
    mean = dequantize_sum(quantize(value, params, rng).astype(np.int64), 1, params).mean()
    assert abs(mean - 0.3) < step(params) / 20  # stochastic rounding: no bias


def test_parameters_default_to_flowers_and_derive_log_degree_and_majority_threshold():
    params = SecAggParams()
    assert (params.clipping_range, params.quantization_range, params.modulus) == (8.0, 2**22, 2**32)
    assert [params.degree(n) for n in (2, 3, 10, 100, 1000)] == [1, 2, 8, 14, 20]
    assert [params.threshold(n) for n in (2, 10, 100)] == [1, 5, 8]
    assert params.max_cohort() == 1024
    with pytest.raises(ValueError):
        params.check_cohort(1025)
    with pytest.raises(ValueError):
        SecAggParams(modulus=3 * 2**20)
    assert SecAggParams(num_shares=0.5).degree(11) == 6  # ceil(0.5 * 10) = 5, made even


def test_shares_altered_on_the_way_abort_the_sum_instead_of_failing_inside_it():
    params = SecAggParams(num_shares=1.0)
    devices = {i: SecAggDevice(params) for i in range(1, 5)}
    aggregator = SecAggAggregator(params, list(devices), LENGTH)
    for i, device in devices.items():
        aggregator.receive_keys(i, *device.advertise_keys())
    roster, neighbours = aggregator.close_keys()
    for i, device in devices.items():
        aggregator.receive_shares(i, device.share_keys(i, roster, neighbours[i]))
    boxes = aggregator.close_shares()
    for i, device in devices.items():
        aggregator.receive_masked_input(i, device.masked_input(np.zeros(LENGTH), boxes[i]))
    survivors, dropped = aggregator.close_masked_inputs()
    for i in survivors:
        shares = devices[i].unmask(survivors, dropped)
        if i == 1:  # one holder's shares are garbage
            shares = {owner: bytes([0x01]) + bytes(65) for owner in shares}
        aggregator.receive_unmask(i, shares)
    with pytest.raises(SecAggAborted):
        aggregator.finish()


def test_replaying_the_messages_with_the_same_graph_seed_rebuilds_the_same_rounds():
    """What a restarted Node does: the stored messages, in round order, into a fresh aggregator
    whose graph comes from the stored seed, give the same graph, boxes and sum."""
    params = SecAggParams(num_shares=4)  # a sparse graph: the draw matters
    xs = updates(8)
    devices = {i: SecAggDevice(params, rng=np.random.default_rng(i)) for i in xs}
    first = SecAggAggregator(params, sorted(devices), LENGTH, random.Random(7))
    messages: list[tuple[str, int, object]] = []

    def take(aggregator, kind, i, payload):
        args = payload if kind == "keys" else (payload,)  # the two keys are two arguments
        getattr(aggregator, f"check_{kind}")(i, *args)  # as the Node: checked, stored, taken
        getattr(aggregator, f"receive_{kind}")(i, *args)
        messages.append((kind, i, args))

    for i in devices:
        take(first, "keys", i, devices[i].advertise_keys())
    roster, neighbours = first.close_keys()
    for i in devices:
        take(first, "shares", i, devices[i].share_keys(i, roster, neighbours[i]))
    boxes = first.close_shares()
    for i in list(devices)[:-1]:  # the last one drops before its masked input
        take(first, "masked_input", i, devices[i].masked_input(xs[i], boxes[i]))
    survivors, dropped = first.close_masked_inputs()
    for i in survivors:
        take(first, "unmask", i, devices[i].unmask(survivors, dropped))
    total, count = first.unmasked_sum()

    again = SecAggAggregator(params, sorted(devices), LENGTH, random.Random(7))
    closes = {"shares": again.close_keys, "masked_input": again.close_shares,
              "unmask": again.close_masked_inputs}
    seen = set()
    for kind, i, payload in messages:
        if kind in closes and kind not in seen:
            closes[kind]()
            seen.add(kind)
        getattr(again, f"receive_{kind}")(i, *payload)
    assert again.neighbours == neighbours
    replayed, replayed_count = again.unmasked_sum()
    assert replayed_count == count and np.array_equal(replayed, total)


def test_a_check_refuses_what_its_receive_refuses_and_changes_nothing():
    params = SecAggParams()
    devices = {i: SecAggDevice(params, rng=np.random.default_rng(i)) for i in range(1, 4)}
    aggregator = SecAggAggregator(params, sorted(devices), LENGTH, random.Random(0))
    keys = {i: d.advertise_keys() for i, d in devices.items()}
    aggregator.check_keys(1, *keys[1])
    with pytest.raises(ValueError):
        aggregator.check_keys(1, keys[1][0][:31], keys[1][1])
    with pytest.raises(ValueError):
        aggregator.check_masked_input(1, bytes(4 * LENGTH))  # not its round
    assert aggregator.keys == {}
    for i in devices:
        aggregator.receive_keys(i, *keys[i])
    roster, neighbours = aggregator.close_keys()
    boxes = devices[1].share_keys(1, roster, neighbours[1])
    with pytest.raises(ValueError):
        aggregator.check_shares(1, {**boxes, 9: b"x"})
    aggregator.check_shares(1, boxes)
    assert aggregator.shared == set()
