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
from fedgrid_node.dashboard import fold_older_versions, why_closed
from fedgrid_node.dashboard.loss_warnings import loss_warnings
from fedgrid_plans import tensors
from tests.support.databases import database_backends
from tests.support.models import logistic_regression

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,900", "--hide-scrollbars",
]


def host(node, name, version="1", **server_config):
    plan, checkpoint = logistic_regression()
    answer = requests.post(
        f"{node.url}/model-centric/host-training",
        data={"name": name, "version": version, "client_config": json.dumps({"batch_size": 8}),
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

    def __init__(self, node, name, version="1", worker_id=None):
        """`worker_id`: the same device again, in a later cycle (a new worker when not given)."""
        self.node, self.name = node, name
        if worker_id is None:
            worker = requests.post(f"{node.url}/model-centric/authenticate",
                                   json={"model_name": name, "model_version": version}, timeout=10)
            worker_id = worker.json()["worker_id"]
        self.worker_id = worker_id
        cycle = requests.post(f"{node.url}/model-centric/cycle-request",
                              json={"worker_id": self.worker_id, "model": name, "version": version,
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
    ("1", " 1"), ("1", "1_0"), ("x", "1"), (str(2**31), "1"), ("1", str(2**31)),
])
def test_checkpoint_downloads_with_ids_out_of_range_are_invalid_request(shared_node, process, number):
    # Found by the schemathesis run (tests/test_fuzz_openapi.py): an id past 64 bits overflowed the
    # database driver, and one past 32 bits PostgreSQL's INTEGER columns (a 500 with a traceback,
    # on PostgreSQL only); ids are ASCII digits from 1 to 2**31 - 1.
    browser = requests.Session()
    logged_in = browser.post(shared_node.url + "/dashboard/login",
                             data={"token": shared_node.admin_token}, timeout=10)
    assert logged_in.status_code == 200
    answer = browser.get(shared_node.url + "/dashboard/checkpoint",
                         params={"process": process, "number": number}, timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")


@pytest.mark.parametrize("backend", database_backends())
def test_cycle_reasons_devices_absurd_losses_folds_and_axes_in_chromium(backend, node_factory,
                                                                         tmp_path, chromium):
    node = node_factory(backend)
    host(node, "digits", version="1")  # an older version: folded away under the newest
    params = host(node, "digits", version="2")
    # Workers A and B report in cycles 1-3 and C joins A in cycle 4, whose loss jumps absurdly.
    workers: dict[str, str | None] = {"A": None, "B": None, "C": None}
    for cycle, (names, loss) in enumerate(
            [("AB", 2.0), ("AB", 1.0), ("AB", 0.8), ("AC", 5000.0)], start=1):
        for seed, name in enumerate(names):
            device = Device(node, "digits", "2", worker_id=workers[name])
            workers[name] = device.worker_id
            device.report(params, 10 * cycle + seed, loss, 0.5)
    # "late" closes by its deadline: cycle 1 with one report (quorum 1), cycle 2 with none.
    late = host(node, "late", cycle_length=2.0, max_diffs=3, min_diffs=1, quorum_policy="abandon")
    Device(node, "late").report(late, 1, 0.7, 0.5)

    chromium.open(node.url + "/")
    chromium.log_in(node.admin_token)

    def late_history():
        return chromium.evaluate(
            "[...document.querySelectorAll('section[data-process=late] table.history tbody tr')]"
            ".map(r => [Number(r.dataset.cycle), r.querySelector('.why-closed').innerText])")

    rows = wait_for(lambda: (lambda h: h if {1, 2} <= {c for c, _ in h} else None)(late_history()),
                    timeout=30, what="late's first two cycles to close at their deadlines")
    reasons = dict(rows)
    assert reasons[1] == "deadline" and reasons[2] == "abandoned: no quorum"

    newest = "section[data-process=digits][data-version='2']"
    history = chromium.evaluate(
        f"[...document.querySelectorAll(\"{newest} table.history tbody tr\")].map(r => ({{"
        " cycle: Number(r.dataset.cycle), why: r.querySelector('.why-closed').innerText,"
        " devices: r.querySelector('[data-column=devices]').innerText,"
        " absurd: r.classList.contains('absurd-loss'),"
        " marked: !!r.querySelector('.loss-warning')}))")
    assert [h["cycle"] for h in history] == [4, 3, 2, 1]
    assert all(h["why"] == "goal reached" and h["devices"] == "2" for h in history)
    assert [h["cycle"] for h in history if h["absurd"] and h["marked"]] == [4], history
    # Eight reports from three distinct workers.
    assert chromium.evaluate(
        f"document.querySelector(\"{newest} [data-figure=distinct-devices]\").innerText") == "3"
    alert = chromium.evaluate(
        f"(() => {{ const a = document.querySelector(\"{newest} .loss-warnings\");"
        " const r = a.getBoundingClientRect();"
        " return {text: a.innerText, visible: r.width > 0 && r.height > 0,"
        " colour: getComputedStyle(a).color}; })()")
    assert alert["visible"] and "cycle 4" in alert["text"] and "5000" in alert["text"]
    assert alert["colour"] == "rgb(192, 57, 43)"  # the stylesheet's --bad: the rule applied
    assert chromium.evaluate("document.querySelectorAll('.loss-warnings').length") == 1

    # Version 1 is folded: in a closed <details>, not on screen until its summary is clicked.
    folded = "details.older-versions[data-older-of=digits]"
    assert chromium.evaluate(f"document.querySelector('{folded}').open") is False
    older = f"document.querySelector(\"{folded} section[data-version='1']\")"
    assert chromium.evaluate(f"{older}.checkVisibility()") is False
    assert "1 older version of digits" in chromium.evaluate(
        f"document.querySelector('{folded} > summary').innerText")
    assert chromium.evaluate(
        "document.querySelectorAll(\"details section[data-version='2']\").length") == 0
    chromium.evaluate(f"document.querySelector('{folded} > summary').click()")
    assert chromium.evaluate(f"{older}.checkVisibility()") is True
    # The live refresh swaps the page's content; what the person opened stays open.
    chromium.evaluate("document.querySelector('#live section.process').dataset.before = 'swap'")
    wait_for(lambda: chromium.evaluate("!document.querySelector('[data-before=swap]')"),
             timeout=15, what="the dashboard to refresh itself")
    assert chromium.evaluate(f"document.querySelector('{folded}').open") is True

    # The axes: every label on screen, none overlapping its neighbour, round and short.
    axes = chromium.evaluate(
        f"[...document.querySelectorAll(\"{newest} figure.chart\")].map(f => {{"
        " const boxes = s => [...f.querySelectorAll(s)].map(t => {"
        "   const r = t.getBoundingClientRect();"
        "   return {text: t.textContent, left: r.left, right: r.right, top: r.top,"
        "           bottom: r.bottom}; });"
        " return {metric: f.dataset.metric, x: boxes('text.x-tick'), y: boxes('text.y-tick'),"
        "  captions: [...f.querySelectorAll('text.axis-caption')].map(t => t.textContent)}; })")
    assert [a["metric"] for a in axes] == ["loss", "accuracy"]
    for axis in axes:
        assert [t["text"] for t in axis["x"]] == ["1", "2", "3", "4"]
        assert 3 <= len(axis["y"]) <= 6
        assert "cycle" in axis["captions"] and axis["metric"] in axis["captions"]
        for ticks, before in ((axis["x"], lambda a, b: a["right"] <= b["left"]),
                              (sorted(axis["y"], key=lambda t: t["top"]),
                               lambda a, b: a["bottom"] <= b["top"])):
            assert all(before(a, b) for a, b in zip(ticks, ticks[1:], strict=False)), ticks
        for tick in axis["y"]:
            assert len(tick["text"]) <= 6 and tick["text"].replace(".", "").replace(
                "-", "").replace("k", "").isdigit(), tick
    loss_labels = [t["text"] for t in axes[0]["y"]]
    assert loss_labels == ["0", "1000", "2000", "3000", "4000", "5000"]  # 0.8 to 5000, round
    chromium.screenshot(tmp_path / "node-dashboard-reasons.png")


def test_the_absurd_loss_rule():
    def cycles(*losses, abandoned=None):
        return [{"sequence": i, "client_metrics": {} if loss is None else {"loss": loss},
                 **({"abandoned_because": abandoned} if i == len(losses) else {})}
                for i, loss in enumerate(losses, start=1)]

    assert loss_warnings(cycles(2.0, 1.0, 0.8, 0.7)) == {}
    # Over 10x the median of the previous (up to 5) cycles: cycle 4; 10x exactly is not.
    assert list(loss_warnings(cycles(2.0, 1.0, 0.8, 10.5))) == [4]
    assert loss_warnings(cycles(1.0, 1.0, 10.0)) == {}
    assert loss_warnings(cycles(1.0, 1.0, 10.1))[3] == (
        "the loss 10.1 is 10.1× the median 1 of the previous 2 cycles")
    assert "is 5,000× the median" in loss_warnings(cycles(1.0, 5000.0))[2]
    # The median: one earlier spike neither hides the next nor makes the recovery look absurd.
    assert list(loss_warnings(cycles(1.0, 1.0, 1.0, 500.0, 1.0, 400.0))) == [4, 6]
    # Only the last five finite losses count: a run that settled at 0.01 is judged by 0.01.
    assert list(loss_warnings(cycles(50, 40, 0.01, 0.01, 0.01, 0.01, 0.01, 0.2))) == [8]
    # Non-finite: the loss itself, or an aggregate the cycle was abandoned for.
    assert list(loss_warnings(cycles(1.0, float("nan"), float("inf"), 1.0))) == [2, 3]
    assert "not finite" in loss_warnings(cycles(1.0, None, abandoned="aggregate_not_finite"))[2]
    # Nothing to compare with: the first cycle, a loss at or below zero, a cycle without loss.
    assert loss_warnings(cycles(1e9)) == {}
    assert loss_warnings(cycles(-5.0, -1.0, 100.0)) == {}
    assert loss_warnings(cycles(None, 1.0, None, 1.5)) == {}


def test_why_a_cycle_closed_in_words_and_older_versions_fold():
    assert why_closed({"reason": "goal"}) == "goal reached"
    assert why_closed({"reason": "deadline"}) == "deadline"
    assert why_closed({"reason": "deadline", "abandoned_because": "no_quorum"}) == \
        "abandoned: no quorum"
    assert why_closed({"reason": "goal", "abandoned_because": "aggregate_not_finite"}) == \
        "abandoned: aggregate not finite"
    assert why_closed({"reason": "stopped"}) == "stopped"
    assert why_closed({"reason": "stopped", "abandoned_because": "no_quorum"}) == \
        "stopped: no quorum"
    assert why_closed({}) == "–"  # closed before the reason was recorded

    newest_first = [{"name": n, "version": v, "status": s} for n, v, s in (
        ("a", "3", "active"), ("b", "1", "active"), ("a", "2", "active"), ("a", "1", "finished"))]
    folded = fold_older_versions(newest_first)
    assert [(p["name"], p["version"]) for p in folded] == [
        ("a", "3"), ("a", "2"), ("a", "1"), ("b", "1")]
    assert [(p["fold_opens"], p["fold_closes"]) for p in folded] == [
        (False, False), (True, False), (False, True), (False, False)]
    assert folded[1]["older_count"] == 2 and folded[1]["older_training"] == 1


def test_network_dashboard_shows_a_name_on_two_nodes_apart_and_its_activity(
        node_factory, tmp_path, chromium):
    network = start_network(data_dir=tmp_path / "network")
    try:
        nodes = {
            name: node_factory("sqlite", extra_args=["--network", network.url, "--id", name,
                                                     "--network-secret", network.secret])
            for name in ("alice", "bob")
        }
        for node in nodes.values():
            host(node, "digits")
        wait_for(lambda: all(network.nodes().get(n, {}).get("processes") for n in nodes),
                 what="heartbeats from alice and bob with digits")
        # Devices that name no Node get one by the stated rule; pinned ones get theirs.
        routed = requests.get(f"{network.url}/route", params={"model": "digits"}, timeout=10).json()
        assert routed["picked_by"] == "training_then_least_loaded"
        assert sorted(c["node_id"] for c in routed["candidates"]) == ["alice", "bob"]
        for _ in range(3):
            pinned = requests.get(f"{network.url}/route", params={"model": "digits", "node": "bob"},
                                  timeout=10).json()
            assert (pinned["node_id"], pinned["address"]) == ("bob", nodes["bob"].url)

        chromium.open(network.url + "/")
        rows = chromium.evaluate(
            "[...document.querySelectorAll('#models tbody tr[data-model=digits]')].map(r => ({"
            " node: r.dataset.node, text: r.innerText,"
            " routes: Number(r.querySelector('[data-rate=routes]').innerText)}))")
        assert [r["node"] for r in rows] == ["alice", "bob"]
        for row in rows:
            assert nodes[row["node"]].url in row["text"] and "also on other Nodes" in row["text"]
        assert rows[1]["routes"] > 0  # bob got at least the three pinned devices
        assert chromium.evaluate("document.getElementById('models-count').innerText") == "2"

        charts = chromium.evaluate(
            "[...document.querySelectorAll('figure.chart')].map(f => ({id: f.id,"
            " x: [...f.querySelectorAll('text.x-tick')].map(t => {"
            "   const r = t.getBoundingClientRect();"
            "   return {text: t.textContent, left: r.left, right: r.right}; }),"
            " y: [...f.querySelectorAll('text.y-tick')].map(t => t.textContent),"
            " captions: [...f.querySelectorAll('text.axis-caption')].map(t => t.textContent),"
            " series: [...f.querySelectorAll('polyline.line')].map(l => l.dataset.series),"
            " last: [...f.querySelectorAll('circle.dot title')].map(t => t.textContent).pop()}))")
        assert [c["id"] for c in charts] == ["chart-nodes-online", "chart-heartbeats",
                                             "chart-routes"]
        for chart in charts:
            labels = [t["text"] for t in chart["x"]]
            assert labels[-1] == "now" and 3 <= len(labels) <= 10, labels
            assert all(label.isdigit() for label in labels[:-1]), labels
            assert all(a["right"] <= b["left"] for a, b in zip(chart["x"], chart["x"][1:],
                                                               strict=False)), chart["x"]
            assert chart["y"][0] == "0" and "minutes ago" in chart["captions"]
            assert all(label.isdigit() for label in chart["y"]), chart["y"]  # counts: whole
        online, heartbeats, routes = charts
        assert online["last"].endswith(": 2")  # both Nodes online this minute
        assert sorted(heartbeats["series"]) == ["alice", "bob"]
        assert "digits v1 @ bob" in routes["series"]
        assert chromium.screenshot(tmp_path / "network-dashboard.png").stat().st_size > 10_000
    finally:
        network.stop()
