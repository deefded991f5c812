"""The bar the SDK is held to: FedAvg on digits, 20 devices, 5 per cycle, E=5, B=10, IID split.

The global MLP must reach 95% test accuracy within 40 cycles. Devices run as threads in this
process against one real Node (the simulation stops as soon as the bar is reached).
"""

from __future__ import annotations

from fedgrid.simulate import simulate


def test_fedavg_reaches_95_percent_within_40_cycles_on_iid_digits(sdk_node, compiled_mlp):
    result = simulate(
        sdk_node.url, sdk_node.admin_token, model=compiled_mlp, devices=20, per_cycle=5,
        cycles=40, split="iid", epochs=5, batch_size=10, processes=0, seed=0,
        target_accuracy=0.95,
    )
    reached = result.cycles_to(0.95)
    assert reached is not None and reached <= 40, [r.test_accuracy for r in result.records]
    assert all(record.reports == 5 for record in result.records)
    # The checkpoints moved one per cycle.
    assert [r.checkpoint for r in result.records] == list(range(2, len(result.records) + 2))
