"""Fixtures of the Node's suites (the real processes come from the repository's conftest.py)."""

from __future__ import annotations

import pytest

from tests.support.api_client import HttpApi, WsApi


@pytest.fixture(params=["http", "ws"])
def api(request, shared_node):
    """A client of the shared Node, once over HTTP and once over WebSocket: the same events must
    answer the same way on both. Modules that need HTTP only define their own `api`."""
    client = (HttpApi(shared_node.url, shared_node.admin_token) if request.param == "http"
              else WsApi(shared_node.ws_url, shared_node.admin_token))
    yield client
    client.close()
