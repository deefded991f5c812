"""The Python executor and the local-training helper (onnxruntime only)."""

from __future__ import annotations

import numpy as np
import pytest

from fedgrid_plans.digits import load_digits_arrays
from fedgrid_plans.executor import BatchReport, PlanExecutor, train
from fedgrid_plans.zoo import ZOO


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_digits_models_learn_over_a_few_epochs(zoo, name):
    compiled = zoo[name]
    features, labels = load_digits_arrays(ZOO[name].input_shape)
    train_x, train_y, test_x, test_y = features[:1400], labels[:1400], features[1400:], labels[1400:]
    executor = PlanExecutor(compiled.to_bytes())
    start = compiled.checkpoint()
    before = (executor.predict(start, test_x).argmax(1) == test_y).mean()

    result = train(executor, start, train_x, train_y, epochs=4, batch_size=32, seed=0)

    per_epoch = len(result.losses) // 4
    first_epoch, last_epoch = np.mean(result.losses[:per_epoch]), np.mean(result.losses[-per_epoch:])
    assert last_epoch < 0.5 * first_epoch
    after = (executor.predict(result.parameters, test_x).argmax(1) == test_y).mean()
    assert after > 0.7 > before  # chance is 0.1
    assert result.updates == 4 * int(np.ceil(1400 / 32))
    assert result.num_samples == 1400
    assert set(result.metrics) == {"loss", "accuracy"}
    for parameter, value in result.diff.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, start[parameter] - result.parameters[parameter])


def test_same_seed_same_diff_and_shuffling_changes_it(zoo):
    compiled = zoo["logistic_regression"]
    features, labels = load_digits_arrays((64,))
    runs = [train(compiled.to_bytes(), compiled.checkpoint(), features[:200], labels[:200], batch_size=16, seed=s) for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0].diff["linear.weight"], runs[1].diff["linear.weight"])
    assert not np.array_equal(runs[0].diff["linear.weight"], runs[2].diff["linear.weight"])
    unshuffled = [train(compiled.to_bytes(), compiled.checkpoint(), features[:200], labels[:200], batch_size=16, seed=s, shuffle=False) for s in (3, 4)]
    np.testing.assert_array_equal(unshuffled[0].diff["linear.bias"], unshuffled[1].diff["linear.bias"])


def test_max_updates_and_callback_stop_training(zoo):
    compiled = zoo["logistic_regression"]
    features, labels = load_digits_arrays((64,))
    limited = train(compiled.to_bytes(), compiled.checkpoint(), features[:300], labels[:300], batch_size=10, epochs=5, max_updates=7)
    assert limited.updates == 7
    assert limited.num_samples == 70

    reports: list[BatchReport] = []

    def stop_after_three(report: BatchReport):
        reports.append(report)
        return report.update < 3

    stopped = train(compiled.to_bytes(), compiled.checkpoint(), features[:300], labels[:300], batch_size=10, on_batch=stop_after_three)
    assert stopped.updates == 3
    assert [r.update for r in reports] == [1, 2, 3]
    assert reports[0].batch_size == 10 and reports[0].epoch == 0
    assert "accuracy" in reports[0].metrics


def test_learning_rate_zero_leaves_parameters_unchanged(zoo):
    compiled = zoo["digits_mlp"]
    features, labels = load_digits_arrays((64,))
    result = train(compiled.to_bytes(), compiled.checkpoint(), features[:50], labels[:50], learning_rate=0.0)
    assert all(not diff.any() for diff in result.diff.values())


def test_defaults_come_from_the_manifest(zoo):
    compiled = zoo["logistic_regression"]
    features, labels = load_digits_arrays((64,))
    result = train(compiled.to_bytes(), compiled.checkpoint(), features[:100], labels[:100])
    assert result.updates == int(np.ceil(100 / compiled.manifest["defaults"]["batch_size"]))


def test_bad_inputs_are_refused(zoo):
    compiled = zoo["logistic_regression"]
    with pytest.raises(ValueError, match="labels"):
        train(compiled.to_bytes(), compiled.checkpoint(), np.zeros((3, 64), np.float32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="no forward graph"):
        plan = compiled.plan.sealed()
        del plan.graphs["forward"]
        PlanExecutor(plan.sealed()).predict(compiled.checkpoint(), np.zeros((1, 64), np.float32))
