"""Regenerate the conformance vectors: ``.venv/bin/python plans/conformance/generate.py``.

For every zoo model (and one variant with momentum, weight decay and FedProx, so the optimizer
state and global-parameter inputs are exercised too) this writes ``<vector>/``:

* ``plan.fgplan``          the plan file (compiled with seed 0)
* ``start.safetensors``    the starting parameters (the checkpoint)
* ``batches.safetensors``  ``features/<i>`` and ``labels/<i>`` for steps i = 0, 1, ...
* ``final.safetensors``    the parameters after all steps, keyed like the checkpoint
* ``vector.json``          learning rate, expected loss and accuracy per step, tolerances

The expected values come from the *eager PyTorch* run of the training step (the very function
the graph was traced from), not from ONNX Runtime, so an executor that matches them matches
PyTorch. Batches come from scikit-learn's digits (upscaled to 28x28 for the MNIST models); the
last batch is smaller than the others so the dynamic batch dimension is exercised.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import torch

from fedgrid_plans import tensors
from fedgrid_plans.compiler import SGD
from fedgrid_plans.digits import load_digits_arrays
from fedgrid_plans.zoo import ZOO, ZOO_NAMES, compile_zoo_model

HERE = pathlib.Path(__file__).resolve().parent
BATCH_SIZES = (8, 8, 8, 5)
# |actual - expected| <= atol + rtol * |expected|, elementwise (numpy.allclose semantics). Float32
# sums over thousands of products (conv weight gradients) differ between runtimes by ~1e-5 after
# four steps; a wrong gradient or update rule differs by orders of magnitude more.
TOLERANCE = {"loss": {"rtol": 1e-4, "atol": 1e-5}, "parameters": {"rtol": 1e-3, "atol": 1e-4}}
VARIANTS = {
    name: {"model": name, "options": {}} for name in ZOO_NAMES
} | {
    "digits_mlp_momentum_fedprox": {
        "model": "digits_mlp",
        "options": {"optimizer": SGD(learning_rate=0.1, momentum=0.9, weight_decay=1e-4), "fedprox_mu": 0.01},
    }
}


def generate(vector: str, spec: dict) -> None:
    torch.manual_seed(0)
    compiled = compile_zoo_model(spec["model"], seed=0, **spec["options"])
    learning_rate = compiled.optimizer.learning_rate
    features, labels = load_digits_arrays(ZOO[spec["model"]].input_shape)
    order = np.random.default_rng(0).permutation(len(features))
    batches, begin = [], 0
    for size in BATCH_SIZES:
        index = order[begin : begin + size]
        batches.append((features[index], labels[index]))
        begin += size

    start = compiled.checkpoint()
    names = compiled.parameter_names
    parameters = [torch.from_numpy(start[n].copy()) for n in names]
    buffers = [torch.zeros_like(p) for p in parameters] if compiled.optimizer.momentum else []
    anchor = [p.clone() for p in parameters] if compiled.fedprox_mu else []
    losses, accuracies = [], []
    for batch_features, batch_labels in batches:
        outputs = compiled.step_function(
            torch.from_numpy(batch_features),
            torch.from_numpy(batch_labels),
            torch.tensor(learning_rate, dtype=torch.float32),
            *[p.clone().requires_grad_(True) for p in parameters],
            *buffers,
            *anchor,
        )
        metric_count = 1 + len(compiled.metrics)
        losses.append(float(outputs[0]))
        accuracies.append(float(outputs[1]))
        updated = outputs[metric_count:]
        parameters = [t.detach() for t in updated[: len(names)]]
        if buffers:
            buffers = [t.detach() for t in updated[len(names) :]]

    folder = HERE / vector
    folder.mkdir(exist_ok=True)
    (folder / "plan.fgplan").write_bytes(compiled.to_bytes())
    (folder / "start.safetensors").write_bytes(tensors.encode(start))
    batch_tensors = {}
    for index, (batch_features, batch_labels) in enumerate(batches):
        batch_tensors[f"features/{index}"] = batch_features
        batch_tensors[f"labels/{index}"] = batch_labels
    (folder / "batches.safetensors").write_bytes(tensors.encode(batch_tensors))
    final = {n: p.numpy().astype(np.float32) for n, p in zip(names, parameters, strict=True)}
    (folder / "final.safetensors").write_bytes(tensors.encode(final))
    description = {
        "model": spec["model"],
        "plan_content_hash": compiled.manifest["content_hash"],
        "steps": len(batches),
        "batch_sizes": list(BATCH_SIZES),
        "learning_rate": learning_rate,
        "optimizer": compiled.manifest["training"]["optimizer"],
        "fedprox_mu": compiled.fedprox_mu,
        "global_parameters": "start" if compiled.fedprox_mu else None,
        "optimizer_state_init": "zeros" if buffers else None,
        "expected_loss": losses,
        "expected_accuracy": accuracies,
        "tolerance": TOLERANCE,
        "reference": f"eager PyTorch {torch.__version__.split('+')[0]} on CPU",
    }
    (folder / "vector.json").write_text(json.dumps(description, indent=2) + "\n")
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"{vector}: {size / 1e6:.2f} MB, losses {[round(v, 4) for v in losses]}")


def main(selected: list[str]) -> None:
    torch.set_num_threads(1)
    for vector, spec in VARIANTS.items():
        if not selected or vector in selected:
            generate(vector, spec)


if __name__ == "__main__":
    main(sys.argv[1:])
