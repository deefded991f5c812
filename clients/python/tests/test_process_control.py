"""The SDK's process controls (fedgrid.Admin) and a device's participate() loop across them."""

from __future__ import annotations

import threading
import time

import pytest

import fedgrid
from fedgrid import Client


def _participate(job, data, outcome, **options) -> threading.Thread:
    def run() -> None:
        try:
            outcome["reports"] = job.participate(data, **options)
        except Exception as exc:  # the test asserts on it
            outcome["reports"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(condition, what: str, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_participate_waits_through_a_pause_and_finishes_after_resume(sdk_node, host, digits,
                                                                     transport):
    # Over HTTP the device sleeps the Node's timeout (a cycle length: 2 s here); over WebSocket
    # the cycle is long (so the timeout is 30 s) and the resume's push must wake it early.
    cycle_length = 2 if transport == "http" else 600
    name = host(server_config={"max_diffs": 1, "num_cycles": 3, "cycle_length": cycle_length})
    features, labels = digits
    url = sdk_node.url if transport == "http" else sdk_node.ws_url
    outcome: dict[str, object] = {}
    with Client(url) as client, fedgrid.Admin(sdk_node.url, sdk_node.admin_token) as admin:
        # The first report pauses the model: the device is then turned away until the resume.
        paused = threading.Event()

        def after_report(assignment, result) -> None:
            if not paused.is_set():
                paused.set()
                assert admin.pause(name)["process_status"] == "paused"

        thread = _participate(client.new_job(name), (features[:40], labels[:40]), outcome,
                              on_report=after_report, wait=1)
        _until(lambda: any(c["rejected"].get("process_paused") for c in admin.cycles(name))
               or not thread.is_alive(), "the device to be turned away while paused")
        assert thread.is_alive(), f"participate() ended while paused: {outcome.get('reports')!r}"
        assert [c["status"] for c in admin.cycles(name)][:1] == ["completed"]
        resumed = time.monotonic()
        assert admin.resume(name)["changed"] is True
        thread.join(timeout=60)
        assert not thread.is_alive(), "participate() did not finish after the resume"
        if transport == "ws":
            assert time.monotonic() - resumed < 20, "the device slept through the resume's push"
        assert next(p for p in admin.processes() if p["model"] == name)["status"] == "finished"
    reports = outcome["reports"]
    assert not isinstance(reports, Exception), reports
    assert len(reports) == 3 and reports[0]["cycle"] == 1


def test_stop_ends_participate_cleanly_and_delete_frees_the_name(sdk_node, host, digits):
    name = host(server_config={"max_diffs": 1, "num_cycles": 50, "cycle_length": 600})
    features, labels = digits
    outcome: dict[str, object] = {}
    with Client(sdk_node.url) as client, fedgrid.Admin(sdk_node.url, sdk_node.admin_token) as admin:
        stopped: dict[str, object] = {}

        def after_report(assignment, result) -> None:
            if not stopped:
                stopped.update(admin.stop(name))

        thread = _participate(client.new_job(name), (features[:40], labels[:40]), outcome,
                              on_report=after_report)
        thread.join(timeout=60)
        assert not thread.is_alive(), "participate() did not end when the model was stopped"
        assert [r["cycle"] for r in outcome["reports"]] == [1]
        # Stopped between cycles: cycle 2 was open with no report, so it was abandoned.
        assert stopped["process_status"] == "stopped"
        assert stopped["cycle"] == {"sequence": 2, "status": "abandoned", "checkpoint": 2}
        with pytest.raises(fedgrid.TrainingStopped) as raised:
            client.new_job(name).request()
        assert isinstance(raised.value, fedgrid.TrainingFinished)
        assert raised.value.reason == "training_stopped"

        with pytest.raises(fedgrid.RequestInvalid) as conflict:
            admin.resume(name)
        assert conflict.value.code == "process_state_conflict"
        assert conflict.value.details["process_status"] == "stopped"
        assert admin.stop(name)["changed"] is False

        # The result is the checkpoint cycle 1 made; delete it once it is kept elsewhere.
        assert admin.checkpoints(name)["latest"] == 2
        assert admin.delete(name)["deleted"] is True
        assert name not in [p["model"] for p in admin.processes()]
        with pytest.raises(fedgrid.ProcessUnknown):
            admin.checkpoints(name)


def test_the_command_line_pauses_resumes_stops_and_deletes(sdk_node, host, capsys, monkeypatch):
    from fedgrid.cli import main

    name = host(server_config={"max_diffs": 2, "cycle_length": 600})
    node = ["--url", sdk_node.url, "--admin-token", sdk_node.admin_token]
    assert main(["pause", name, "--version", "1.0", *node]) == 0
    assert capsys.readouterr().out.strip() == f"paused {name} 1.0: now paused"
    assert main(["pause", name, *node]) == 0
    assert capsys.readouterr().out.strip() == f"{name} 1.0 was already paused"
    assert main(["status", *node]) == 0
    assert f"{name} 1.0: paused" in capsys.readouterr().out
    assert main(["resume", name, *node]) == 0
    assert capsys.readouterr().out.strip() == f"resumed {name} 1.0: now active"

    # Deleting an active model is refused with the Node's reason, on one line.
    assert main(["delete", name, "--yes", *node]) == 1
    err = capsys.readouterr().err
    assert "it is active; stop it first, or delete with force" in err and "Traceback" not in err

    assert main(["stop", name, *node]) == 0
    assert capsys.readouterr().out.strip() == (
        f"stopped {name} 1.0: now stopped; cycle 1 abandoned, final checkpoint 1")
    assert main(["resume", name, *node]) == 1
    assert "cannot resume" in capsys.readouterr().err

    # Without --yes and without a terminal to ask on, nothing is deleted.
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["delete", name, *node]) == 1
    assert "pass --yes to confirm" in capsys.readouterr().err
    assert main(["delete", name, "--yes", *node]) == 0
    assert capsys.readouterr().out.strip() == f"deleted {name} 1.0"
    assert main(["checkpoints", name, *node]) == 1
    assert f"no hosted model named {name}" in capsys.readouterr().err
