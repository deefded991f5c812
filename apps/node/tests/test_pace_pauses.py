"""Pace steering learns how long cycles run, not how long a researcher kept one paused.

In-process Node with the clocks of the engine and the process controls moved forward during a
pause (as tests/test_late_reports.py moves the engine's): no sleeping through a pause."""

from __future__ import annotations

from datetime import timedelta

import fedgrid_node.cycles.engine as engine_module
import fedgrid_node.cycles.process_control as control_module

from .test_late_reports import ADMIN, app, node, place, report  # noqa: F401  (fixtures)


def control(client, event, name):
    answer = client.post(f"/model-centric/{event}", json={"name": name, "version": "1"},
                         headers=ADMIN)
    assert answer.status_code == 200, answer.json
    return answer.json


def test_time_paused_is_not_counted_in_a_cycles_duration(app, node, monkeypatch):  # noqa: F811
    name, worker, key = place(node, max_diffs=1, cycle_length=3600)
    control(node, "pause-process", name)
    # An hour and a half passes while paused (the watcher waits for the resume, not for time).
    for module in (engine_module, control_module):
        real = module.utcnow
        monkeypatch.setattr(module, "utcnow",
                            lambda real=real: real() + timedelta(seconds=5400))
    control(node, "resume-process", name)
    assert report(node, worker, key).status_code == 200  # the goal: cycle 1 closes
    engine = app.extensions["fedgrid"].engine
    (process_id,) = [pid for pid, label in engine._labels.items() if name in label]
    # The cycle ran for moments; the pause is not part of what devices are told to expect.
    assert engine.typical_cycle_seconds(process_id) < 60
