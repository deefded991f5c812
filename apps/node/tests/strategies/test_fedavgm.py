import numpy as np
from hypothesis import given, settings

from fedgrid_node.cycles.strategies import build_strategy

from .rounds import cycles, random_inputs, run, seeds


@settings(max_examples=40, deadline=None)
@given(seeds, cycles)
def test_fedavgm_applies_server_momentum(seed, count):
    params, diffs = random_inputs(seed, count)
    strategy = build_strategy({"name": "fedavgm", "server_learning_rate": 0.7, "server_momentum": 0.8})
    result = run(strategy, params, diffs)
    for name, start in params.items():
        x, v = start.astype(np.float64), np.zeros_like(start, dtype=np.float64)
        for diff in diffs:
            v = 0.8 * v + diff[name]
            x = x - 0.7 * v
        np.testing.assert_allclose(result[name], x, rtol=1e-5, atol=1e-6)


def test_first_cycle_equals_fedavg_with_the_same_learning_rate():
    params, diffs = random_inputs(3, 1)
    momentum = run(build_strategy({"name": "fedavgm", "server_learning_rate": 1.0}), params, diffs)
    plain = run(build_strategy({"name": "fedavg"}), params, diffs)
    for name in params:
        np.testing.assert_allclose(momentum[name], plain[name], rtol=1e-6)
