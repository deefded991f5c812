"""The streaming weighted sum against a direct numpy computation (property-based)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fedgrid_node.cycles.aggregation import RunningWeightedSum

SPEC = {"w": ((3, 4), np.dtype("float32")), "b": ((4,), np.dtype("float32"))}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 10_000)), min_size=1, max_size=12)
)
def test_running_sum_equals_the_weighted_mean(reports):
    running = RunningWeightedSum(SPEC)
    diffs = []
    for seed, num_samples in reports:
        rng = np.random.default_rng(seed)
        diff = {n: rng.standard_normal(shape).astype(dtype) for n, (shape, dtype) in SPEC.items()}
        diffs.append((diff, num_samples))
        running.fold(diff, num_samples)
    average = running.average()
    total = sum(n for _, n in reports)
    assert running.total_samples == total and running.count == len(reports)
    for name in SPEC:
        expected = sum(d[name].astype(np.float64) * n for d, n in diffs) / total
        # float32 groups of at most 16 terms: within ~1e-6 of the largest diff value.
        np.testing.assert_allclose(average[name], expected, rtol=1e-6, atol=1e-5)


def test_folding_does_not_modify_the_diff_and_order_barely_matters():
    rng = np.random.default_rng(3)
    diffs = [({n: rng.standard_normal(s).astype(d) for n, (s, d) in SPEC.items()}, k)
             for k in (3, 50, 7)]
    forward, backward = RunningWeightedSum(SPEC), RunningWeightedSum(SPEC)
    copies = [{n: v.copy() for n, v in d.items()} for d, _ in diffs]
    for diff, n in diffs:
        forward.fold(diff, n)
    for diff, n in reversed(diffs):
        backward.fold(diff, n)
    for (diff, _), copy in zip(diffs, copies, strict=True):
        for name in SPEC:
            assert np.array_equal(diff[name], copy[name])
    for name in SPEC:
        np.testing.assert_allclose(forward.average()[name], backward.average()[name], rtol=1e-6,
                                   atol=1e-6)


def test_folding_in_parts_is_bit_identical_to_one_pass():
    spec = {"big": ((70_001,), np.dtype("float32")), "small": ((3,), np.dtype("float32"))}
    rng = np.random.default_rng(5)
    reports = [({n: rng.standard_normal(s).astype(d) for n, (s, d) in spec.items()}, k)
               for k in (1, 17, 300)]
    whole, split = RunningWeightedSum(spec), RunningWeightedSum(spec)
    for diff, n in reports:
        whole.fold(diff, n)
        for part in range(3):
            split.fold_part(diff, n, part, 3)
        split.finish_fold(n)
    for name in spec:
        assert np.array_equal(whole.average()[name], split.average()[name])
    assert split.count == 3 and split.total_samples == 318


def test_many_reports_across_groups_stay_accurate_and_order_reproducible():
    from fedgrid_node.cycles.aggregation import GROUP_SIZE

    spec = {"w": ((257,), np.dtype("float32"))}
    rng = np.random.default_rng(9)
    reports = [({"w": rng.standard_normal(257).astype(np.float32)}, int(rng.integers(1, 5000)))
               for _ in range(GROUP_SIZE * 3 + 5)]
    first, again = RunningWeightedSum(spec), RunningWeightedSum(spec)
    for diff, n in reports:
        first.fold(diff, n)
        again.fold(diff, n)
    assert first.sums["w"].any()  # whole groups reached the float64 total
    expected = sum(d["w"].astype(np.float64) * n for d, n in reports) / sum(n for _, n in reports)
    np.testing.assert_allclose(first.average()["w"], expected, rtol=1e-6, atol=1e-6)
    # Same reports in the same order (a restart re-folding stored diffs): bit for bit.
    assert np.array_equal(first.average()["w"], again.average()["w"])


def test_folding_batches_is_bit_identical_to_folding_one_at_a_time():
    """A restart re-folds the stored reports one at a time; a Node folds them in batches of any
    size (report_batches.py), with groups closing inside a batch: the sums must agree bit for
    bit, or a restarted cycle's checkpoint would differ from an uninterrupted one's."""
    from fedgrid_node.cycles.aggregation import GROUP_SIZE

    spec = {"w": ((70_001,), np.dtype("float32")), "b": ((3,), np.dtype("float32"))}
    rng = np.random.default_rng(11)
    reports = [({n: rng.standard_normal(s).astype(d) for n, (s, d) in spec.items()},
                int(rng.integers(1, 500))) for _ in range(GROUP_SIZE * 2 + 7)]
    single, batched = RunningWeightedSum(spec), RunningWeightedSum(spec)
    for diff, n in reports:
        single.fold(diff, n)
    start = 0
    for size in (3, GROUP_SIZE + 2, 1, 9, len(reports)):  # batches straddling group ends
        batch = reports[start:start + size]
        for part in range(2):
            batched.fold_parts(batch, part, 2)
        for _, n in batch:
            batched.finish_fold(n)
        start += size
    assert batched.count == len(reports) and start >= len(reports)
    for name in spec:
        assert np.array_equal(single.sums[name], batched.sums[name])
        assert np.array_equal(single.average()[name], batched.average()[name])
