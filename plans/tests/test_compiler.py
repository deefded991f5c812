"""compile_plan: every zoo model compiles; the ONNX step equals PyTorch's own training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedgrid_plans.compiler import SGD, CompileError, compile_plan
from fedgrid_plans.executor import PlanExecutor
from fedgrid_plans.validation import validate_plan
from fedgrid_plans.zoo import ZOO, ZOO_NAMES, build_zoo_model, compile_zoo_model

PARAMETER_COUNTS = {
    "logistic_regression": 650,
    "digits_mlp": 2_410,
    "digits_cnn": 6_090,
    "pygrid_mlp": 311_650,
    "mcmahan_2nn": 199_210,
    "mcmahan_cnn": 1_663_370,  # as in McMahan et al. (2017)
}


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_model_compiles_with_a_dynamic_batch_and_matches_eager_torch(zoo, name):
    compiled = zoo[name]
    checkpoint = compiled.checkpoint()
    assert sum(a.size for a in checkpoint.values()) == PARAMETER_COUNTS[name]
    assert all(a.dtype == np.float32 for a in checkpoint.values())
    assert list(checkpoint) == [p["name"] for p in compiled.manifest["parameters"]]
    validate_plan(compiled.to_bytes(), checkpoint)

    executor = PlanExecutor(compiled.to_bytes())
    rng = np.random.default_rng(1)
    for batch in (1, 5):  # neither is the example batch size (2)
        features = rng.random((batch, *ZOO[name].input_shape), dtype=np.float32)
        labels = rng.integers(0, 10, batch)
        result = executor.step(checkpoint, features, labels, learning_rate=0.1)
        reference = compiled.step_function(
            torch.from_numpy(features), torch.from_numpy(labels), torch.tensor(0.1),
            *[torch.from_numpy(a.copy()).requires_grad_() for a in checkpoint.values()],
        )
        assert result.loss == pytest.approx(float(reference[0]), rel=1e-5)
        assert result.metrics["num_samples"] == batch
        for index, parameter in enumerate(checkpoint):
            np.testing.assert_allclose(result.parameters[parameter], reference[3 + index].detach().numpy(), atol=1e-6)
        prediction = executor.predict(checkpoint, features)
        assert prediction.shape == (batch, 10)


def test_compilation_is_deterministic_and_the_graph_does_not_depend_on_the_seed():
    first, again, other_seed = (compile_zoo_model("logistic_regression", seed=s) for s in (0, 0, 1))
    assert first.to_bytes() == again.to_bytes()
    assert other_seed.manifest["content_hash"] == first.manifest["content_hash"]
    assert not np.array_equal(other_seed.checkpoint()["linear.weight"], first.checkpoint()["linear.weight"])
    # The global RNG is left alone.
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    build_zoo_model("digits_cnn", seed=5)
    assert torch.equal(torch.rand(1), expected)


def _torch_reference_steps(model, loss_module, optimizer_factory, batches, mu=0.0):
    """Plain PyTorch: forward, loss, backward, optimizer.step(); returns losses and parameters."""
    optimizer = optimizer_factory(model.parameters())
    anchor = [p.detach().clone() for p in model.parameters()]
    losses = []
    for features, labels in batches:
        optimizer.zero_grad()
        loss = loss_module(model(torch.from_numpy(features)), torch.from_numpy(labels))
        objective = loss + mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)) if mu else loss
        objective.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses, {n: p.detach().numpy() for n, p in model.named_parameters()}


def _plan_steps(compiled, batches, learning_rate):
    executor = PlanExecutor(compiled.to_bytes())
    parameters = compiled.checkpoint()
    start = dict(parameters)
    state = executor.initial_optimizer_state()
    losses = []
    for features, labels in batches:
        result = executor.step(parameters, features, labels, learning_rate=learning_rate, optimizer_state=state, global_parameters=start)
        parameters, state = result.parameters, result.optimizer_state
        losses.append(result.loss)
    return losses, parameters


def _small_model(outputs: int, final: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, outputs)]
    return nn.Sequential(*layers, *([final] if final else []))


def _batches(labels_for, count=3, size=4):
    rng = np.random.default_rng(7)
    return [(rng.standard_normal((size + i, 6)).astype(np.float32), labels_for(rng, size + i)) for i in range(count)]


CLASS_LABELS = lambda rng, n: rng.integers(0, 3, n)  # noqa: E731
LOSS_CASES = {
    "cross_entropy": (3, None, nn.CrossEntropyLoss(), CLASS_LABELS),
    "nll": (3, nn.LogSoftmax(dim=1), nn.NLLLoss(), CLASS_LABELS),
    "mse": (2, None, nn.MSELoss(), lambda rng, n: rng.standard_normal((n, 2)).astype(np.float32)),
    "bce_with_logits": (1, None, nn.BCEWithLogitsLoss(), lambda rng, n: rng.integers(0, 2, (n, 1)).astype(np.float32)),
}


@pytest.mark.parametrize("loss_name", list(LOSS_CASES))
def test_each_loss_trains_like_pytorch(loss_name):
    outputs, final, loss_module, labels_for = LOSS_CASES[loss_name]
    batches = _batches(labels_for)
    compiled = compile_plan(_small_model(outputs, final), loss=loss_module, optimizer=SGD(0.3), example_batch=batches[0])
    assert compiled.manifest["training"]["loss"] == loss_name
    losses, parameters = _plan_steps(compiled, batches, 0.3)
    expected_losses, expected = _torch_reference_steps(_small_model(outputs, final), loss_module, lambda p: torch.optim.SGD(p, lr=0.3), batches)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5, atol=1e-6)
    for name, value in expected.items():
        np.testing.assert_allclose(parameters[name], value, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [dict(momentum=0.9), dict(momentum=0.9, nesterov=True, weight_decay=0.01), dict(weight_decay=0.1)],
    ids=["momentum", "nesterov+weight_decay", "weight_decay"],
)
def test_sgd_variants_match_torch_optim_sgd(options):
    batches = _batches(CLASS_LABELS, count=4)
    torch_optimizer = torch.optim.SGD(_small_model(3).parameters(), lr=0.2, **options)
    compiled = compile_plan(_small_model(3), optimizer=torch_optimizer, example_batch=batches[0])
    assert compiled.manifest["training"]["optimizer"]["momentum"] == options.get("momentum", 0.0)
    assert bool(compiled.manifest["optimizer_state"]) == ("momentum" in options)
    losses, parameters = _plan_steps(compiled, batches, 0.2)
    expected_losses, expected = _torch_reference_steps(_small_model(3), nn.CrossEntropyLoss(), lambda p: torch.optim.SGD(p, lr=0.2, **options), batches)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5, atol=1e-6)
    for name, value in expected.items():
        np.testing.assert_allclose(parameters[name], value, atol=1e-6)


def test_fedprox_term_pulls_towards_the_global_model():
    batches = _batches(CLASS_LABELS, count=4)
    compiled = compile_plan(_small_model(3), optimizer=SGD(0.2), example_batch=batches[0], fedprox_mu=0.5)
    roles = [e["role"] for e in compiled.manifest["train"]["inputs"]]
    assert roles.count("global_parameter") == 4
    losses, parameters = _plan_steps(compiled, batches, 0.2)
    expected_losses, expected = _torch_reference_steps(_small_model(3), nn.CrossEntropyLoss(), lambda p: torch.optim.SGD(p, lr=0.2), batches, mu=0.5)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5, atol=1e-6)
    for name, value in expected.items():
        np.testing.assert_allclose(parameters[name], value, atol=1e-6)


def test_metrics_can_be_chosen():
    batches = _batches(CLASS_LABELS)
    compiled = compile_plan(_small_model(3), example_batch=batches[0], metrics=["num_samples"], include_forward=False, include_averaging=False)
    assert [e["name"] for e in compiled.manifest["train"]["outputs"][:2]] == ["loss", "num_samples"]
    assert set(compiled.plan.graphs) == {"train"}


class _Flatten(nn.Module):
    def forward(self, x):
        return x.flatten(1)


def _image_batch():
    return np.zeros((2, 1, 8, 8), np.float32), np.zeros(2, np.int64)


def test_unsupported_layer_error_names_the_op_and_the_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveMaxPool2d(2), _Flatten(), nn.Linear(8, 10))
    with pytest.raises(CompileError) as caught:
        compile_plan(model, example_batch=_image_batch())
    message = str(caught.value)
    assert "aten.adaptive_max_pool2d_backward" in message
    assert "1 (AdaptiveMaxPool2d)" in message


def test_layer_with_running_statistics_is_refused_by_name():
    model = nn.Sequential(_Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10))
    with pytest.raises(CompileError, match=r"layer 2 \(BatchNorm1d\) has buffers"):
        compile_plan(model, example_batch=_image_batch())


def test_grouped_convolution_is_refused_naming_the_convolution():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2), _Flatten(), nn.Linear(64, 10))
    with pytest.raises(CompileError, match=r"convolution_backward.*Conv2d.*groups=2"):
        compile_plan(model, example_batch=_image_batch())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(loss="hinge"), "loss 'hinge' is not supported"),
        (dict(loss=nn.CrossEntropyLoss(reduction="sum")), "reduction='mean'"),
        (dict(loss="mse", metrics=["accuracy"]), "accuracy' is not defined for loss 'mse'"),
        (dict(metrics=["f1"]), "metric 'f1' is not supported"),
        (dict(optimizer="adam"), "optimizer 'adam' is not supported"),
        (dict(fedprox_mu=-1.0), "fedprox_mu"),
    ],
)
def test_configuration_errors_say_what_is_supported(kwargs, match):
    with pytest.raises(CompileError, match=match):
        compile_plan(_small_model(3), example_batch=_batches(CLASS_LABELS)[0], **kwargs)


def test_torch_adam_is_refused():
    model = _small_model(3)
    with pytest.raises(CompileError, match="Adam is not supported"):
        compile_plan(model, optimizer=torch.optim.Adam(model.parameters()), example_batch=_batches(CLASS_LABELS)[0])


class _Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x)


def test_op_outside_the_allow_list_is_refused_at_compile_time_naming_the_layer():
    model = nn.Sequential(nn.Linear(6, 8), _Sine(), nn.Linear(8, 3))
    with pytest.raises(CompileError) as caught:
        compile_plan(model, example_batch=_batches(CLASS_LABELS)[0])
    message = str(caught.value)
    assert "ai.onnx::Sin" in message and "aten.sin" in message and "1 (_Sine)" in message


def test_max_pooling_ties_route_the_gradient_like_pytorch():
    """Pooling is rewritten for speed (non-overlapping windows); ties must still go to the first
    maximum in each window, as PyTorch's kernel does, and other pooling stays with the exporter."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(3, stride=1), _Flatten(), nn.Linear(8, 10))
    features = np.zeros((3, 1, 8, 8), np.float32)
    features[0, 0, :4, :4] = 1.0  # constant regions: every window is a tie
    features[1] = np.kron(np.random.default_rng(0).random((1, 4, 4)), np.ones((2, 2))).astype(np.float32)
    features[2] = np.random.default_rng(1).random((1, 8, 8))
    labels = np.array([1, 2, 3])
    compiled = compile_plan(model, optimizer=SGD(0.5), example_batch=(features, labels))
    result = PlanExecutor(compiled.to_bytes()).step(compiled.checkpoint(), features, labels, learning_rate=0.5)
    reference = compiled.step_function(
        torch.from_numpy(features), torch.from_numpy(labels), torch.tensor(0.5),
        *[torch.from_numpy(a.copy()).requires_grad_() for a in compiled.checkpoint().values()],
    )
    for index, parameter in enumerate(compiled.parameter_names):
        np.testing.assert_allclose(result.parameters[parameter], reference[3 + index].detach().numpy(), atol=1e-6)


def test_example_batch_size_equal_to_a_model_dimension_keeps_the_batch_dynamic():
    """The tracer gives equal sizes one symbol; an example batch of 64 rows of 64 features (or
    of 10 rows for 10 classes) must still give a plan for any batch size."""
    for rows in (64, 10):
        model = build_zoo_model("logistic_regression")
        features = np.random.default_rng(0).random((rows, 64), dtype=np.float32)
        labels = np.arange(rows) % 10
        compiled = compile_plan(model, example_batch=(features, labels), include_forward=False, include_averaging=False)
        executor = PlanExecutor(compiled.to_bytes())
        for batch in (3, rows):
            assert executor.step(compiled.checkpoint(), features[:batch], labels[:batch]).metrics["num_samples"] == batch
