"""The dashboard's process control buttons: in headless Chromium as a person uses them, and over
plain HTTP for who may use them."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from .test_dashboard import CHROMIUM, Chromium, Device, host


@pytest.fixture
def chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/install-system-deps.sh as root")
    browser = Chromium(tmp_path / "chromium-profile")
    yield browser
    browser.close()


def status_of(node, name):
    listed = requests.get(f"{node.url}/model-centric/processes", timeout=10,
                          headers={"Authorization": f"Bearer {node.admin_token}"}).json()
    return next((p["status"] for p in listed["processes"] if p["model"] == name), None)


def click(chromium, selector: str) -> None:
    """Press a button or follow a link, and wait for the page it leads to."""
    chromium.events.clear()
    chromium.evaluate(f"document.querySelector({selector!r}).click()")
    chromium.wait_event("Page.loadEventFired")


def test_pause_resume_stop_and_delete_from_the_dashboard(node_factory, chromium, tmp_path):
    node = node_factory("sqlite")
    params = host(node, "run-a")
    device = Device(node, "run-a")
    chromium.open(node.url + "/")
    chromium.log_in(node.admin_token)
    controls = '[data-controls="run-a"] [data-control="{}"]'

    click(chromium, controls.format("pause"))
    assert status_of(node, "run-a") == "paused"
    assert chromium.evaluate("document.querySelector('[data-status]').innerText") == "paused"
    assert "Paused: devices are turned away" in chromium.text()
    device.report(params, seed=1, loss=0.5, accuracy=0.8)  # accepted before the pause: it counts
    chromium.screenshot(tmp_path / "paused.png")

    click(chromium, controls.format("resume"))
    assert status_of(node, "run-a") == "active"

    # Stop asks first; cancelling changes nothing.
    click(chromium, controls.format("stop"))
    assert "Stop training run-a version 1?" in chromium.text()
    click(chromium, "#cancel")
    assert status_of(node, "run-a") == "active"
    click(chromium, controls.format("stop"))
    click(chromium, "#confirm-stop")
    assert chromium.evaluate("location.pathname") == "/"
    assert status_of(node, "run-a") == "stopped"
    assert chromium.evaluate("document.querySelector('[data-status]').innerText") == "stopped"
    # Stopped with one report of min_diffs 1: cycle 1 was aggregated into checkpoint 2.
    assert chromium.evaluate(
        "document.querySelector('table.checkpoints td.num').innerText") == "2"
    assert chromium.evaluate(
        "[...document.querySelectorAll('[data-controls=\"run-a\"] [data-control]')]"
        ".map(e => e.dataset.control)") == ["delete"]

    click(chromium, controls.format("delete"))
    assert "Delete run-a version 1?" in chromium.text()
    click(chromium, "#confirm-delete")
    assert status_of(node, "run-a") is None
    assert "run-a" not in chromium.text() and "No model is hosted yet" in chromium.text()


def test_the_control_routes_need_a_dashboard_session_and_a_confirmation(node_factory):
    node = node_factory("sqlite")
    host(node, "run-b")
    anonymous = requests.post(node.url + "/dashboard/process/pause", data={"process": 1},
                              timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "admin_login_required"
    assert status_of(node, "run-b") == "active"

    browser = requests.Session()
    browser.post(node.url + "/dashboard/login", data={"token": node.admin_token}, timeout=10)
    forged = browser.post(node.url + "/dashboard/process/stop",
                          data={"process": 1, "confirm": "yes"},
                          headers={"Origin": "http://evil.example"}, timeout=10)
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "cross_origin_form"
    # Without confirm=yes, stop only asks.
    unconfirmed = browser.post(node.url + "/dashboard/process/stop", data={"process": 1},
                               allow_redirects=False, timeout=10)
    assert unconfirmed.status_code == 303
    assert unconfirmed.headers["Location"].endswith("/dashboard/process/confirm?control=stop&process=1")
    assert status_of(node, "run-b") == "active"
    # An illegal control (from a stale page) is shown on the dashboard, with a 409.
    refused = browser.post(node.url + "/dashboard/process/delete",
                           data={"process": 1, "confirm": "yes"}, timeout=10)
    assert refused.status_code == 409
    assert "cannot delete run-b version 1: it is active; stop it first" in refused.text
    assert status_of(node, "run-b") == "active"
    unknown = browser.post(node.url + "/dashboard/process/pause", data={"process": 99}, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "process_unknown"
    bad = browser.post(node.url + "/dashboard/process/explode", data={"process": 1}, timeout=10)
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"
    assert "Traceback" not in node.log()
