"""Fixtures for the SDK's tests: one real Node for the session, the digits MLP compiled once."""

from __future__ import annotations

import itertools

import pytest

from fedgrid import Admin
from fedgrid.data import load_digits
from tests.support.node_process import start_node

_names = itertools.count(1)


@pytest.fixture(scope="session")
def sdk_node(tmp_path_factory):
    """One SQLite Node for the SDK tests; each test hosts its own uniquely named model."""
    node = start_node(data_dir=tmp_path_factory.mktemp("sdk-node"))
    yield node
    node.stop()


@pytest.fixture(scope="session")
def compiled_mlp():
    """The zoo's digits MLP, compiled once (the researcher side; needs torch)."""
    from fedgrid_plans.zoo import compile_zoo_model

    return compile_zoo_model("digits_mlp")


@pytest.fixture(scope="session")
def digits():
    return load_digits((64,))


@pytest.fixture
def host(sdk_node, compiled_mlp):
    """Host the MLP under a fresh name on ``sdk_node`` (or ``node=``); returns the name."""

    def hosting(*, node=None, client_config=None, server_config=None) -> str:
        node = node or sdk_node
        name = f"sdk-model-{next(_names)}"
        with Admin(node.url, node.admin_token) as admin:
            admin.host_training(compiled_mlp, name, "1.0",
                                client_config=client_config or {"batch_size": 16, "epochs": 1},
                                server_config=server_config or {})
        return name

    return hosting
