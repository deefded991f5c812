"""fedgrid_plans.scoring against torch's own losses, for every loss a plan can have."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fedgrid_plans.scoring import SCORE_BATCH, ForwardSpec, score


class FixedOutputs:
    """An executor whose forward graph answers given outputs, batch by batch, in order."""

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs
        self.served = 0

    def predict(self, parameters, features):
        rows = self.outputs[self.served:self.served + len(features)]
        self.served += len(features)
        return rows


# More rows than one forward run takes, so the sums across batches are checked too.
COUNT = SCORE_BATCH + 37
RNG = np.random.default_rng(3)


def run(outputs, labels, spec):
    return score(FixedOutputs(outputs), {}, np.zeros((len(labels), 1), np.float32), labels, spec)


@pytest.mark.parametrize("loss", ["cross_entropy", "nll"])
def test_class_index_losses_and_accuracy(loss):
    logits = RNG.standard_normal((COUNT, 7)).astype(np.float32)
    outputs = logits if loss == "cross_entropy" else F.log_softmax(torch.from_numpy(logits), 1).numpy()
    labels = RNG.integers(0, 7, COUNT)
    result = run(outputs, labels, ForwardSpec((1,), (7,), True, loss))
    reference = (F.cross_entropy if loss == "cross_entropy" else F.nll_loss)(
        torch.from_numpy(outputs).double(), torch.from_numpy(labels))
    assert result["loss"] == pytest.approx(float(reference), rel=1e-9)
    assert result["accuracy"] == pytest.approx(float(np.mean(outputs.argmax(1) == labels)))
    assert result["num_samples"] == COUNT


def test_binary_cross_entropy_with_logits_over_all_elements():
    logits = (RNG.standard_normal((COUNT, 3)) * 4).astype(np.float32)
    targets = RNG.integers(0, 2, (COUNT, 3)).astype(np.float32)
    result = run(logits, targets, ForwardSpec((1,), (3,), False, "bce_with_logits"))
    reference = F.binary_cross_entropy_with_logits(torch.from_numpy(logits).double(),
                                                   torch.from_numpy(targets).double())
    assert result["loss"] == pytest.approx(float(reference), rel=1e-9)
    assert result["accuracy"] == pytest.approx(float(np.mean((logits > 0) == (targets > 0.5))))


def test_mean_squared_error_has_no_accuracy():
    outputs = RNG.standard_normal((COUNT, 2)).astype(np.float32)
    targets = RNG.standard_normal((COUNT, 2)).astype(np.float32)
    result = run(outputs, targets, ForwardSpec((1,), (2,), False, "mse"))
    reference = F.mse_loss(torch.from_numpy(outputs).double(), torch.from_numpy(targets).double())
    assert result["loss"] == pytest.approx(float(reference), rel=1e-9)
    assert "accuracy" not in result


def test_an_unknown_loss_gives_accuracy_only():
    logits = RNG.standard_normal((10, 4)).astype(np.float32)
    labels = RNG.integers(0, 4, 10)
    assert set(run(logits, labels, ForwardSpec((1,), (4,), True, None))) == {"accuracy",
                                                                            "num_samples"}
