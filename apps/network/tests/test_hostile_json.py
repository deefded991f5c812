"""The Network's JSON bodies (issue 16): deeply nested or non-object JSON is `invalid_json` (400),
never a 500 or a RecursionError."""

from __future__ import annotations

import pytest

from fedgrid_network.app import create_app
from fedgrid_network.config import NetworkConfig
from tests.support.databases import database_backends, make_database_url

SECRET = "registration-secret"
ADMIN = "network-admin"
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(params=database_backends())
def network(request, tmp_path):
    database = make_database_url(request.param, tmp_path)
    config = NetworkConfig(database_url=database.url, data_dir=tmp_path, admin_token=ADMIN,
                           registration_secret=SECRET)
    app = create_app(config)
    yield app.test_client()
    app.extensions["fedgrid_network"].db.dispose()
    database.drop()


@pytest.mark.parametrize("path", ["/join", "/heartbeat", "/leave", "/search-model"])
def test_nested_and_non_object_bodies_are_invalid_json(network, path):
    headers = {"Authorization": f"Bearer {SECRET}"}
    for body in (DEEP, '{"a": ' * 100_000 + "1" + "}" * 100_000,
                 '{"node_id": ' + "[" * 100 + "]" * 100 + "}", "9" * 5000, "[1, 2]", "null", "{"):
        response = network.post(path, data=body, content_type="application/json", headers=headers)
        error = response.get_json()["error"]
        assert (response.status_code, error["code"]) == (400, "invalid_json"), (path, body[:20], error)
