"""Stored reports are read back one at a time: a Node restarted with many reports stored for its
open cycle, and a hosted averaging plan run over a cycle's reports at its close, peak at about one
report's memory more than a fresh Node, not all of them."""

from __future__ import annotations

import numpy as np
import pytest

from fedgrid_plans import tensors
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import unique_name
from tests.support.node_process import GLIBC_ALLOCATOR

REPORTS = 40


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process has had."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def wide_plan() -> tuple[bytes, bytes]:
    """A 1024 -> 1024 linear model: a 4 MiB checkpoint."""
    import torch

    from fedgrid_plans.compiler import compile_plan

    torch.manual_seed(0)
    compiled = compile_plan(torch.nn.Linear(1024, 1024), loss="cross_entropy",
                            example_batch=(np.zeros((2, 1024), np.float32), np.zeros(2, np.int64)))
    return compiled.to_bytes(), tensors.encode(compiled.checkpoint())


def report_all(api: HttpApi, name: str, checkpoint: bytes, count: int) -> bytes:
    """`count` devices each report the same diff; returns it."""
    diff = tensors.encode({n: np.full(v.shape, 1e-3, v.dtype)
                           for n, v in tensors.decode(checkpoint).items()})
    for _ in range(count):
        worker = api.call("authenticate", {"model_name": name}).body["worker_id"]
        place = api.call("cycle-request", {"worker_id": worker, "model": name}).body
        assert api.call("report", {"worker_id": worker, "request_key": place["request_key"],
                                   "num_samples": 1}, blobs={"diff": diff}).status == 200
    return diff


def assert_peak_near_a_fresh_nodes(node_factory, backend, pid: int, stored: int) -> None:
    """Against a fresh Node's peak on the same backend: reading the reports back may add a few
    reports' worth (the running sum, one decoded report, the driver's row), never all of them."""
    fresh = node_factory(backend, env=GLIBC_ALLOCATOR)
    baseline, peak = peak_rss(fresh.process.pid), peak_rss(pid)
    assert peak < baseline + stored / 4, (
        f"peak {peak / 2**20:.0f} MiB, a fresh Node's {baseline / 2**20:.0f} MiB, "
        f"{stored / 2**20:.0f} MiB of reports stored")


@pytest.mark.parametrize("backend", database_backends())
def test_the_restore_folds_stored_reports_one_at_a_time(node_factory, backend):
    node = node_factory(backend, env=GLIBC_ALLOCATOR)
    plan, checkpoint = wide_plan()
    api = HttpApi(node.url, node.admin_token)
    name = unique_name("restore")
    hosted = api.call("host-training", {"name": name, "version": "1",
                                        "client_config": {"batch_size": 2},
                                        "server_config": {"max_diffs": REPORTS + 1,
                                                          "cycle_length": 3600}},
                      admin=True, blobs={"model": checkpoint, "plans/training_plan": plan})
    assert hosted.status == 200, hosted.body
    diff = report_all(api, name, checkpoint, REPORTS)
    api.close()
    node.stop()
    restarted = node.restart()
    api = HttpApi(restarted.url, restarted.admin_token)
    cycle = api.call("cycles", {"name": name}, admin=True).body["cycles"][0]
    assert cycle["reported"] == REPORTS  # all folded back
    assert_peak_near_a_fresh_nodes(node_factory, backend, restarted.process.pid,
                                   REPORTS * len(diff))
    api.close()
    restarted.stop()


@pytest.mark.parametrize("backend", database_backends())
def test_the_hosted_averaging_plan_reads_the_reports_one_at_a_time(node_factory, backend):
    node = node_factory(backend, env=GLIBC_ALLOCATOR)
    plan, checkpoint = wide_plan()
    api = HttpApi(node.url, node.admin_token)
    name = unique_name("averaging")
    hosted = api.call("host-training", {"name": name, "version": "1",
                                        "client_config": {"batch_size": 2},
                                        "server_config": {"max_diffs": REPORTS, "cycle_length": 3600,
                                                          "strategy": "hosted_averaging_plan"}},
                      admin=True, blobs={"model": checkpoint, "plans/training_plan": plan,
                                         "averaging_plan": plan})
    assert hosted.status == 200, hosted.body
    diff = report_all(api, name, checkpoint, REPORTS - 1)
    before = peak_rss(node.process.pid)  # with every upload handled: only the close is left
    report_all(api, name, checkpoint, 1)  # the last report closes the cycle
    assert api.call("cycles", {"name": name}, admin=True).body["cycles"][0]["status"] == "completed"
    api.close()
    grown, stored = peak_rss(node.process.pid) - before, REPORTS * len(diff)
    assert grown < stored / 4, f"the close took the peak {grown / 2**20:.0f} MiB higher"


def current_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_with_the_nodes_own_allocator_memory_follows_the_load_not_the_reports(node_factory):
    """The Node keeps freed memory for reuse (fedgrid_server/memory.py): its RSS may settle
    higher than glibc's defaults would leave it, but at the same load it settles at the same
    level, however many reports went through."""
    node = node_factory()
    plan, checkpoint = wide_plan()
    api = HttpApi(node.url, node.admin_token)
    name = unique_name("kept")
    assert api.call("host-training", {"name": name, "version": "1",
                                      "client_config": {"batch_size": 2},
                                      "server_config": {"max_diffs": 1000, "cycle_length": 3600}},
                    admin=True, blobs={"model": checkpoint, "plans/training_plan": plan}).status == 200
    settled = []
    for _ in range(3):  # 3 x 20 reports of 4 MiB, one at a time
        report_all(api, name, checkpoint, 20)
        settled.append(current_rss(node.process.pid))
    api.close()
    # (one 4 MiB report's worth of slack: what was live when each was read)
    assert settled[2] <= settled[0] + 4 * 2**20, [f"{rss / 2**20:.0f} MiB" for rss in settled]
