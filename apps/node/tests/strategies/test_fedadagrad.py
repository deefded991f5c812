import numpy as np
from hypothesis import given, settings

from fedgrid_node.cycles.strategies import build_strategy

from .rounds import cycles, random_inputs, reddi_reference, run, seeds


@settings(max_examples=40, deadline=None)
@given(seeds, cycles)
def test_fedadagrad_follows_reddi_algorithm_2(seed, count):
    params, diffs = random_inputs(seed, count)
    eta, beta_1, tau = 0.1, 0.5, 1e-3
    strategy = build_strategy({"name": "fedadagrad", "server_learning_rate": eta,
                               "beta_1": beta_1, "tau": tau})
    result = run(strategy, params, diffs)
    for name, start in params.items():
        expected = reddi_reference(start, diffs, name, eta=eta, beta_1=beta_1, tau=tau,
                                   second_moment=lambda v, d2: v + d2)
        np.testing.assert_allclose(result[name], expected, rtol=1e-4, atol=1e-5)
