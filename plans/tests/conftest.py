"""Shared fixtures: compiling is the slow part (seconds per model), so each zoo model is compiled
once per test session and shared read-only."""

from __future__ import annotations

import os

# Two CPU cores are shared with other work: keep every runtime to one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


class ZooCache:
    def __init__(self):
        self._compiled = {}

    def __getitem__(self, name: str):
        if name not in self._compiled:
            from fedgrid_plans.zoo import compile_zoo_model

            self._compiled[name] = compile_zoo_model(name)
        return self._compiled[name]


@pytest.fixture(scope="session")
def zoo() -> ZooCache:
    import torch

    torch.set_num_threads(1)
    return ZooCache()


@pytest.fixture(scope="session")
def logistic_plan_bytes(zoo) -> bytes:
    return zoo["logistic_regression"].to_bytes()
