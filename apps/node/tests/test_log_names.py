"""The Node's log names a hosted process by its model: "digits 1.0 (process 6)", not "process 6"."""

from __future__ import annotations

from tests.support.api_client import HttpApi
from tests.support.models import unique_name

from .test_cycle_engine import host, report, request_place


def test_cycle_logs_name_the_model_and_version_beside_the_process_id(shared_node):
    api = HttpApi(shared_node.url, shared_node.admin_token)
    try:
        name = unique_name("logged")
        host(api, name, max_diffs=1, num_cycles=1)
        process_id = next(p["id"] for p in api.call("processes", admin=True).body["processes"]
                          if p["model"] == name)
        worker, body = request_place(api, name)
        # The goal of one report closes the cycle (and finishes the process) before the answer.
        assert report(api, worker, body, seed=1).status == 200
    finally:
        api.close()
    label = f"{name} 1 (process {process_id})"
    lines = [line for line in shared_node.log().splitlines() if name in line]
    assert any(f"cycle 1 of {label} completed (goal): 1 reports, checkpoint 2" in line
               for line in lines), lines
    assert any(f"{label} finished its 1 cycles" in line for line in lines), lines
    bare = (f"of process {process_id} ", f"process {process_id} finished")
    assert not any(text in line for line in shared_node.log().splitlines() for text in bare)
