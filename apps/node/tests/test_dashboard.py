"""The Node's dashboard (and the Network's), as a person sees them.

Over plain HTTP: who may see what, and the login. In headless Chromium (driven over the DevTools
protocol, no Playwright): the pages while a training run is going, asserting on the numbers and
charts on screen, with screenshots saved under the test's tmp dir.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import websocket

from fedgrid_network.testing import start_network, wait_for
from fedgrid_plans import tensors
from tests.support.models import logistic_regression

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900", "--hide-scrollbars",
]


def host(node, name, **server_config):
    plan, checkpoint = logistic_regression()
    answer = requests.post(
        f"{node.url}/model-centric/host-training",
        data={"name": name, "version": "1", "client_config": json.dumps({"batch_size": 8}),
              "server_config": json.dumps({"max_diffs": 2, "cycle_length": 600,
                                           **server_config})},
        files={"model": ("model.safetensors", checkpoint),
               "plans[training_plan]": ("plan.fgplan", plan)},
        headers={"Authorization": f"Bearer {node.admin_token}"}, timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return tensors.decode(checkpoint)


class Device:
    """A device speaking the raw model-centric API: one place in one cycle, one report."""

    def __init__(self, node, name):
        self.node, self.name = node, name
        worker = requests.post(f"{node.url}/model-centric/authenticate",
                               json={"model_name": name, "model_version": "1"}, timeout=10)
        self.worker_id = worker.json()["worker_id"]
        cycle = requests.post(f"{node.url}/model-centric/cycle-request",
                              json={"worker_id": self.worker_id, "model": name, "version": "1",
                                    "ping": 5, "download": 50, "upload": 50}, timeout=10).json()
        assert cycle["status"] == "accepted", cycle
        self.request_key = cycle["request_key"]

    def report(self, params, seed, loss, accuracy):
        rng = np.random.default_rng(seed)
        diff = {k: (rng.standard_normal(v.shape) * 0.01).astype(v.dtype) for k, v in params.items()}
        answer = requests.post(
            f"{self.node.url}/model-centric/report",
            params={"worker_id": self.worker_id, "request_key": self.request_key,
                    "num_samples": 40, "metrics": json.dumps({"loss": loss, "accuracy": accuracy})},
            data=tensors.encode(diff), headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text


def metrics_of_cycle(cycle):
    return 2.0 / cycle, min(0.99, 0.45 + 0.12 * cycle)


def test_admin_data_needs_the_admin_token(node_factory):
    node = node_factory("sqlite")
    host(node, "secret-model")
    anonymous = requests.get(node.url + "/", timeout=10)
    assert anonymous.status_code == 200 and "text/html" in anonymous.headers["Content-Type"]
    assert "secret-model" not in anonymous.text and 'name="token"' in anonymous.text
    assert "default-src 'self'" in anonymous.headers["Content-Security-Policy"]

    browser = requests.Session()
    wrong = browser.post(node.url + "/dashboard/login", data={"token": "guess"}, timeout=10)
    assert wrong.status_code == 403 and "secret-model" not in wrong.text
    forged = browser.post(node.url + "/dashboard/login", data={"token": node.admin_token},
                          headers={"Origin": "http://evil.example"}, timeout=10)
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "cross_origin_form"
    assert not browser.cookies

    logged_in = browser.post(node.url + "/dashboard/login", data={"token": node.admin_token},
                             timeout=10)
    assert logged_in.status_code == 200 and "secret-model" in logged_in.text
    assert logged_in.history[0].status_code == 303 and logged_in.url == node.url + "/"
    cookie = logged_in.history[0].headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert node.admin_token not in cookie and node.admin_token not in logged_in.text
    checkpoint = browser.get(node.url + "/dashboard/checkpoint",
                             params={"process": 1, "number": 1}, timeout=10)
    assert checkpoint.status_code == 200 and checkpoint.content == logistic_regression()[1]
    assert requests.get(node.url + "/dashboard/checkpoint", params={"process": 1, "number": 1},
                        timeout=10).json()["error"]["code"] == "admin_login_required"

    browser.post(node.url + "/dashboard/logout", timeout=10)
    assert "secret-model" not in browser.get(node.url + "/", timeout=10).text
    assert node.admin_token not in node.log()


class Chromium:
    """Headless Chromium driven over the DevTools protocol (a WebSocket on loopback)."""

    def __init__(self, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip(), timeout=30,
                 what="Chromium's DevTools port")
        port = int(port_file.read_text().split()[0])
        targets = requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params):
        message_id = next(self.ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
        raise AssertionError(f"no {method} within {timeout} s")

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def log_in(self, token: str) -> None:
        """Type the token into the form and press the button, as a person would."""
        self.evaluate("document.getElementById('token').focus()")
        self.call("Input.insertText", text=token)
        self.events.clear()
        self.evaluate("document.querySelector('form.login button').click()")
        self.wait_event("Page.loadEventFired")

    def screenshot(self, path: Path) -> Path:
        """The whole page, not only the window's first screen."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": max(1280, size["width"]),
                "height": min(4000, size["height"]), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip,
                         captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def chromium(tmp_path):
    if not Path(CHROMIUM).exists() or not shutil.which("chromium"):
        pytest.fail("Chromium is missing: run scripts/install-system-deps.sh as root")
    browser = Chromium(tmp_path / "chromium-profile")
    yield browser
    browser.close()


def test_dashboards_in_chromium_while_a_training_run_is_going(node_factory, tmp_path, chromium):
    network = start_network(data_dir=tmp_path / "network")
    try:
        node = node_factory("sqlite", extra_args=["--network", network.url, "--id", "alice",
                                                  "--network-secret", network.secret])
        params = host(node, "digits", num_cycles=20)
        # Three cycles complete, with loss falling and accuracy rising as the devices report it.
        for cycle in (1, 2, 3):
            loss, accuracy = metrics_of_cycle(cycle)
            for seed, device in enumerate([Device(node, "digits"), Device(node, "digits")]):
                device.report(params, seed + 10 * cycle, loss + 0.01 * seed, accuracy)
        # Cycle 4 is under way: two devices training, one has reported.
        busy = [Device(node, "digits"), Device(node, "digits")]
        loss4, accuracy4 = metrics_of_cycle(4)
        busy[0].report(params, 40, loss4, accuracy4)

        chromium.open(node.url + "/")
        before = chromium.text()
        assert "Fedgrid Node alice" in before and "Admin token" in before
        assert "digits" not in before.replace("Fedgrid", "")  # admin data hidden
        chromium.log_in(node.admin_token)
        assert chromium.evaluate("location.href") == node.url + "/"  # no token in the URL
        seen = chromium.text()
        assert "digits" in seen and "Current cycle 4" in seen
        figures = chromium.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-figure]')]"
            ".map(e => [e.dataset.figure, e.innerText]))")
        assert figures["accepted"] == "2" and figures["reported"] == "1"
        # (labels are upper-cased by the stylesheet, so compare in lower case)
        assert "reported of 2" in seen.lower() and "until deadline" in seen.lower()
        charts = chromium.evaluate(
            "[...document.querySelectorAll('figure.chart')].map(f => ({metric: f.dataset.metric,"
            " dots: f.querySelectorAll('circle.dot').length,"
            " line: f.querySelector('polyline.line').getAttribute('points').split(' ').length,"
            " width: f.querySelector('svg').getBoundingClientRect().width}))")
        assert [c["metric"] for c in charts] == ["loss", "accuracy"]
        assert all(c["dots"] == 3 and c["line"] == 3 and c["width"] > 300 for c in charts)
        # Loss goes down on screen: the last dot is lower on the chart than the first (SVG y grows down).
        ys = chromium.evaluate("[...document.querySelectorAll('figure[data-metric=loss] circle.dot')]"
                               ".map(c => Number(c.getAttribute('cy')))")
        assert ys[0] < ys[-1]
        assert "registered" in seen.lower() and "last heartbeat" in seen
        history = chromium.evaluate("document.querySelectorAll('table.history tbody tr').length")
        assert history == 3
        assert chromium.evaluate(
            "document.querySelectorAll('table.checkpoints tbody tr').length") == 4
        shot = chromium.screenshot(tmp_path / "node-dashboard.png")
        assert shot.stat().st_size > 20_000

        # The second device reports: cycle 4 closes and the page follows without a reload.
        busy[1].report(params, 41, loss4 + 0.02, accuracy4)
        wait_for(lambda: "Current cycle 5" in chromium.text(), timeout=15,
                 what="the dashboard to show cycle 5 by itself")
        assert chromium.evaluate(
            "document.querySelectorAll('figure[data-metric=loss] circle.dot').length") == 4
        chromium.screenshot(tmp_path / "node-dashboard-cycle5.png")

        # The Network's dashboard: alice online with a recent heartbeat, digits in the directory.
        wait_for(lambda: network.nodes()["alice"]["processes"], what="a heartbeat with digits")
        chromium.open(network.url + "/")
        page = chromium.text()
        assert "Fedgrid Network" in page and "alice" in page and "online" in page
        assert chromium.evaluate("document.getElementById('nodes-online').innerText") == "1"
        assert "s ago" in chromium.evaluate(
            "document.querySelector('tr[data-node=alice]').innerText")
        directory = chromium.evaluate(
            "document.querySelector('tr[data-model=digits]').innerText")
        assert "alice" in directory and "open" in directory
        assert chromium.screenshot(tmp_path / "network-dashboard.png").stat().st_size > 10_000
        print(f"screenshots in {tmp_path}")
    finally:
        network.stop()


@pytest.mark.parametrize(("process", "number"), [
    ("1" * 20, "1"), ("1", "9" * 25), ("9" * 4000, "1"), ("٣", "1"), ("0", "1"), ("-1", "1"),
    ("1", " 1"), ("1", "1_0"), ("x", "1"),
])
def test_checkpoint_downloads_with_ids_out_of_range_are_invalid_request(shared_node, process, number):
    # Found by the schemathesis run (tests/test_fuzz_openapi.py): an id past 64 bits overflowed the
    # database driver (a 500 with a traceback); ids are ASCII digits from 1 to 2**63 - 1.
    browser = requests.Session()
    logged_in = browser.post(shared_node.url + "/dashboard/login",
                             data={"token": shared_node.admin_token}, timeout=10)
    assert logged_in.status_code == 200
    answer = browser.get(shared_node.url + "/dashboard/checkpoint",
                         params={"process": process, "number": number}, timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
