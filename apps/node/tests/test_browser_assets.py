"""The browser blueprint: the JS SDK bundle, ONNX Runtime's WASM and the example page, or a JSON 404."""

from __future__ import annotations

import pytest

from fedgrid_node.app import create_app
from fedgrid_node.browser import ASSETS_ENV
from fedgrid_node.config import NodeConfig


@pytest.fixture
def client(tmp_path):
    app = create_app(NodeConfig(data_dir=tmp_path / "node", admin_token="t"))
    try:
        yield app.test_client()
    finally:
        app.extensions["fedgrid"].engine.stop()


@pytest.fixture
def assets(tmp_path, monkeypatch):
    """A built-looking assets directory (what `npm run build` writes to clients/js/dist)."""
    root = tmp_path / "dist"
    (root / "ort").mkdir(parents=True)
    (root / "examples").mkdir()
    (root / "fedgrid.js").write_text("var fedgrid = {};")
    (root / "fedgrid.mjs").write_text("export const version = '0';")
    (root / "ort" / "ort-wasm-simd-threaded.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (root / "ort" / "ort-wasm-simd-threaded.mjs").write_text("export default 1;")
    (root / "examples" / "browser-device.html").write_text("<!doctype html><title>Fedgrid</title>")
    (root / "examples" / "digits.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    (tmp_path / "secret.txt").write_text("outside the assets")
    monkeypatch.setenv(ASSETS_ENV, str(root))
    return root


def test_bundle_wasm_and_example_page_are_served_with_browser_types(client, assets):
    cases = {
        "/js/fedgrid.js": ("text/javascript", b"var fedgrid = {};"),
        "/js/fedgrid.mjs": ("text/javascript", b"export const version = '0';"),
        "/js/ort/ort-wasm-simd-threaded.wasm": ("application/wasm", b"\x00asm\x01\x00\x00\x00"),
        "/js/ort/ort-wasm-simd-threaded.mjs": ("text/javascript", b"export default 1;"),
        "/js/examples/digits.safetensors": ("application/octet-stream", None),
        "/examples/browser-device": ("text/html", b"<!doctype html><title>Fedgrid</title>"),
    }
    for url, (media_type, body) in cases.items():
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.mimetype == media_type, url
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        if body is not None:
            assert answer.data == body, url


def test_missing_assets_answer_a_json_404_that_says_how_to_build_them(client, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(ASSETS_ENV, str(empty))
    for url in ("/js/fedgrid.js", "/js/ort/ort-wasm-simd-threaded.wasm", "/examples/browser-device"):
        answer = client.get(url)
        assert answer.status_code == 404, url
        error = answer.get_json()["error"]
        assert error["code"] == "js_assets_missing" and error["status"] == 404
        assert "make js" in error["message"] and str(empty) in error["message"]


def test_unknown_files_and_paths_outside_the_assets_are_not_found(client, assets):
    for url in ("/js/nothing.js", "/js/../secret.txt", "/js/%2e%2e/secret.txt", "/js/ort/../../secret.txt"):
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert answer.get_json()["error"]["code"] in ("not_found",), url
        assert b"outside the assets" not in answer.data


def test_assets_directory_is_read_per_request(client, assets, tmp_path, monkeypatch):
    assert client.get("/js/fedgrid.js").status_code == 200
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path / "nowhere"))
    assert client.get("/js/fedgrid.js").get_json()["error"]["code"] == "js_assets_missing"
