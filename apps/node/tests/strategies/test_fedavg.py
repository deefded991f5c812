import numpy as np
from hypothesis import given, settings

from fedgrid_node.cycles.strategies import build_strategy

from .rounds import cycles, random_inputs, run, seeds


@settings(max_examples=40, deadline=None)
@given(seeds, cycles)
def test_fedavg_subtracts_the_scaled_average_diff(seed, count):
    params, diffs = random_inputs(seed, count)
    result = run(build_strategy({"name": "fedavg", "server_learning_rate": 0.5}), params, diffs)
    for name, start in params.items():
        expected = start.astype(np.float64)
        for diff in diffs:
            expected = (expected - 0.5 * diff[name]).astype(np.float32)
        np.testing.assert_allclose(result[name], expected, rtol=1e-6, atol=1e-7)
