import numpy as np
from hypothesis import given, settings

from fedgrid_node.cycles.strategies import build_strategy

from .rounds import cycles, random_inputs, run, seeds


@settings(max_examples=40, deadline=None)
@given(seeds, cycles)
def test_fedadam_follows_reddi_algorithm_2(seed, count):
    params, diffs = random_inputs(seed, count)
    eta, beta_1, beta_2, tau = 0.05, 0.9, 0.99, 1e-3
    strategy = build_strategy({"name": "fedadam", "server_learning_rate": eta, "beta_1": beta_1,
                               "beta_2": beta_2, "tau": tau})
    result = run(strategy, params, diffs)
    for name, start in params.items():
        x = start.astype(np.float64)
        m, v = np.zeros_like(x), np.full_like(x, tau**2)
        for diff in diffs:
            delta = -diff[name]
            m = beta_1 * m + (1 - beta_1) * delta
            v = beta_2 * v + (1 - beta_2) * delta**2
            x = x + eta * m / (np.sqrt(v) + tau)
        np.testing.assert_allclose(result[name], x, rtol=1e-4, atol=1e-5)
