import numpy as np
from hypothesis import given, settings

from fedgrid_node.cycles.strategies import build_strategy

from .rounds import cycles, random_inputs, run, seeds


@settings(max_examples=40, deadline=None)
@given(seeds, cycles)
def test_fedadagrad_follows_reddi_algorithm_2(seed, count):
    params, diffs = random_inputs(seed, count)
    eta, beta_1, tau = 0.1, 0.5, 1e-3
    strategy = build_strategy({"name": "fedadagrad", "server_learning_rate": eta,
                               "beta_1": beta_1, "tau": tau})
    result = run(strategy, params, diffs)
    for name, start in params.items():
        x = start.astype(np.float64)
        m, v = np.zeros_like(x), np.full_like(x, tau**2)
        for diff in diffs:
            delta = -diff[name]
            m = beta_1 * m + (1 - beta_1) * delta
            v = v + delta**2
            x = x + eta * m / (np.sqrt(v) + tau)
        np.testing.assert_allclose(result[name], x, rtol=1e-4, atol=1e-5)
