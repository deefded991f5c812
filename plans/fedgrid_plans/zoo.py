"""The model zoo: the reference models every SDK must be able to train, compiled deterministically.

| name                  | input        | architecture                                                     |
|-----------------------|--------------|------------------------------------------------------------------|
| logistic_regression   | 64 (digits)  | Linear 64 -> 10                                                  |
| digits_mlp            | 64 (digits)  | 64 -> 32 ReLU -> 10 (the SDK simulation's model)                 |
| digits_cnn            | 1x8x8        | conv3x3 16 + pool, conv3x3 32 + pool, Linear 128 -> 10           |
| pygrid_mlp            | 784 (MNIST)  | 784 -> 392 ReLU -> 10 (PyGrid's model-centric tutorial)          |
| mcmahan_2nn           | 784 (MNIST)  | 784 -> 200 ReLU -> 200 ReLU -> 10 (McMahan et al. 2017, "2NN")   |
| mcmahan_cnn           | 1x28x28      | conv5x5 32 + pool, conv5x5 64 + pool, FC 512 ReLU, 10 (softmax)  |

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(AISTATS 2017): the CNN has 1,663,370 parameters with "same" padding, which this one matches.
Every model ends in logits; the softmax is inside the cross-entropy loss, as is usual in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fedgrid_plans.compiler import SGD, CompiledPlan, compile_plan


class LogisticRegression(nn.Module):
    def __init__(self, features: int = 64, classes: int = 10):
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, x):
        return self.linear(x)


class MultilayerPerceptron(nn.Module):
    """Fully connected ReLU network; ``sizes = (inputs, hidden..., classes)``."""

    def __init__(self, sizes: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class DigitsCNN(nn.Module):
    """A small CNN for scikit-learn's 8x8 digits (1x8x8 inputs)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


class McMahanCNN(nn.Module):
    """McMahan et al.'s MNIST CNN (1x28x28 inputs)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=5, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 7 * 7, 512)
        self.fc2 = nn.Linear(512, classes)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


@dataclass(frozen=True)
class ZooModel:
    """A zoo entry: how to build it and the training defaults its plan carries."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    learning_rate: float
    batch_size: int
    description: str
    classes: int = 10


ZOO: dict[str, ZooModel] = {
    model.name: model
    for model in (
        ZooModel("logistic_regression", LogisticRegression, (64,), 0.1, 32, "digits, 64 -> 10"),
        ZooModel("digits_mlp", lambda: MultilayerPerceptron((64, 32, 10)), (64,), 0.1, 32, "digits, 64 -> 32 -> 10"),
        ZooModel("digits_cnn", DigitsCNN, (1, 8, 8), 0.1, 32, "digits 8x8, two 3x3 convs"),
        ZooModel("pygrid_mlp", lambda: MultilayerPerceptron((784, 392, 10)), (784,), 0.1, 64, "MNIST, 784 -> 392 -> 10"),
        ZooModel("mcmahan_2nn", lambda: MultilayerPerceptron((784, 200, 200, 10)), (784,), 0.1, 10, "MNIST, 784 -> 200 -> 200 -> 10"),
        ZooModel("mcmahan_cnn", McMahanCNN, (1, 28, 28), 0.1, 10, "MNIST 28x28, two 5x5 convs 32/64, FC 512"),
    )
}
ZOO_NAMES = tuple(ZOO)


def build_zoo_model(name: str, seed: int = 0) -> nn.Module:
    """The untrained torch model, initialised from ``seed`` without touching the global RNG."""
    entry = _entry(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return entry.build()


def compile_zoo_model(name: str, seed: int = 0, **options) -> CompiledPlan:
    """Compile a zoo model with its defaults (cross-entropy, SGD); same seed, same plan bytes."""
    entry = _entry(name)
    model = build_zoo_model(name, seed)
    example = (torch.zeros((2, *entry.input_shape)), torch.zeros(2, dtype=torch.int64))
    options.setdefault("optimizer", SGD(learning_rate=entry.learning_rate))
    options.setdefault("batch_size", entry.batch_size)
    return compile_plan(model, loss="cross_entropy", example_batch=example, name=name, **options)


def _entry(name: str) -> ZooModel:
    if name not in ZOO:
        raise KeyError(f"unknown zoo model {name!r}; known: {list(ZOO)}")
    return ZOO[name]
