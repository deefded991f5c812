"""The pages a Node serves to browser devices are cross-origin isolated (COOP + COEP), so the
JavaScript SDK may train on several threads; every /js/ answer says who may embed it (CORP, in
line with the CORS setting); an operator can turn isolation off. Real Node processes, on each
database backend; what a browser makes of these headers is clients/js/test/browser_threads.test.js.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from fedgrid_node.browser import ASSETS_ENV
from fedgrid_node.isolation import ISOLATION_ENV
from fedgrid_server.testing import free_port, server_env
from tests.support.databases import database_backends

COOP = "Cross-Origin-Opener-Policy"
COEP = "Cross-Origin-Embedder-Policy"
CORP = "Cross-Origin-Resource-Policy"


@pytest.fixture(params=database_backends())
def backend(request):
    return request.param


@pytest.fixture
def assets(tmp_path, monkeypatch):
    """A built-looking assets directory; the Nodes started afterwards inherit FEDGRID_JS_ASSETS."""
    root = tmp_path / "dist"
    (root / "ort").mkdir(parents=True)
    (root / "examples").mkdir()
    (root / "fedgrid.js").write_text("var fedgrid = {};")
    (root / "ort" / "ort-wasm-simd-threaded.mjs").write_text("export default 1;")
    (root / "ort" / "ort-wasm-simd-threaded.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (root / "examples" / "browser-device.html").write_text("<!doctype html><title>Fedgrid</title>")
    (root / "examples" / "digits.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    monkeypatch.setenv(ASSETS_ENV, str(root))
    monkeypatch.delenv(ISOLATION_ENV, raising=False)
    monkeypatch.delenv("FEDGRID_CORS_ORIGINS", raising=False)
    return root


def get(node, path):
    answer = requests.get(f"{node.url}{path}", timeout=10)
    return answer, answer.headers


def test_device_pages_are_isolated_and_js_files_may_be_embedded_by_isolated_pages(node_factory, backend, assets):
    node = node_factory(backend)
    for page in ("/examples/browser-device", "/js/examples/browser-device.html"):
        answer, headers = get(node, page)
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html"), page
        assert (headers.get(COOP), headers.get(COEP)) == ("same-origin", "require-corp"), page
    # The worker script of ONNX Runtime's threads must carry COEP itself (see isolation.py).
    for script in ("/js/fedgrid.js", "/js/ort/ort-wasm-simd-threaded.mjs"):
        _, headers = get(node, script)
        assert headers.get(COEP) == "require-corp", script
        assert COOP not in headers, script
    for path in ("/js/fedgrid.js", "/js/ort/ort-wasm-simd-threaded.mjs", "/js/ort/ort-wasm-simd-threaded.wasm",
                 "/js/examples/digits.safetensors", "/js/examples/browser-device.html"):
        answer, headers = get(node, path)
        assert answer.status_code == 200, path
        assert headers.get(CORP) == "cross-origin", path
    # A JSON error from /js/ is readable by an isolated page as well, rather than a network error.
    answer, headers = get(node, "/js/nothing.js")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert headers.get(CORP) == "cross-origin"
    # Only the device pages: the API and the operator's dashboard are left as they were.
    for path in ("/health", "/status", "/"):
        _, headers = get(node, path)
        assert not {COOP, COEP, CORP} & set(headers), path


def test_isolation_turned_off_by_flag_sends_no_coop_or_coep(node_factory, backend, assets):
    node = node_factory(backend, extra_args=["--cross-origin-isolation", "off"])
    for path in ("/examples/browser-device", "/js/fedgrid.js", "/js/ort/ort-wasm-simd-threaded.mjs"):
        answer, headers = get(node, path)
        assert answer.status_code == 200, path
        assert COOP not in headers and COEP not in headers, path
    # Who may embed the SDK's files does not depend on whether the Node's own pages are isolated.
    assert get(node, "/js/fedgrid.js")[1].get(CORP) == "cross-origin"


def test_isolation_off_by_environment_and_cors_none_keeps_js_files_to_the_nodes_own_pages(
        node_factory, backend, assets, monkeypatch):
    monkeypatch.setenv(ISOLATION_ENV, "off")
    monkeypatch.setenv("FEDGRID_CORS_ORIGINS", "none")
    node = node_factory(backend)
    _, headers = get(node, "/examples/browser-device")
    assert COOP not in headers and COEP not in headers
    for path in ("/js/fedgrid.js", "/js/ort/ort-wasm-simd-threaded.wasm", "/js/nothing.js"):
        assert get(node, path)[1].get(CORP) == "same-origin", path


def test_a_list_of_cors_origins_still_lets_isolated_pages_of_those_origins_embed_the_sdk(
        node_factory, backend, assets, monkeypatch):
    monkeypatch.setenv("FEDGRID_CORS_ORIGINS", "https://shop.example")
    node = node_factory(backend)
    answer = requests.get(f"{node.url}/js/fedgrid.js", headers={"Origin": "https://shop.example"}, timeout=10)
    assert answer.headers.get(CORP) == "cross-origin"
    assert answer.headers.get("Access-Control-Allow-Origin") == "https://shop.example"


def test_an_unknown_isolation_setting_stops_the_node_with_a_message(tmp_path):
    env = server_env({**os.environ, ISOLATION_ENV: "sometimes"}, drop=("GRID_ADMIN_TOKEN",))
    finished = subprocess.run(
        [sys.executable, "-m", "fedgrid_node", "--host", "127.0.0.1", "--port", str(free_port()),
         "--data-dir", str(tmp_path), "--admin-token=t"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert finished.returncode == 2
    assert "--cross-origin-isolation: expected on or off, not 'sometimes'" in finished.stderr
