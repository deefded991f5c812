"""After the disk fails a flush, the Node acknowledges no more writes until it is restarted.

Linux may drop the pages that a failed `fdatasync` could not write and report the next
`fdatasync` of the file as a success, and SQLite's recovery stops at the first WAL frame it
cannot read: so a commit acknowledged after a failed flush may be lost in the next crash, however
well the later flushes went. As PostgreSQL does (it stops), the Node does not try the flush
again: every write is refused `storage_unavailable` (503) and `/health` answers 503, while reads
go on. A restart recovers what reached the disk, and the devices send again what was refused.

A Node in this process, its flushes made to fail (a failing disk cannot be had here).
"""

from __future__ import annotations

import errno
import os

import pytest

from tests.support.databases import database_backends
from tests.support.node_in_process import node_in_process

from .test_late_reports import place
from .test_late_reports import report as send_report
from .test_report_batches import more_places


@pytest.fixture
def in_process(tmp_path):
    """On SQLite, whose WAL the Node flushes itself."""
    yield from node_in_process(tmp_path, "sqlite")


@pytest.fixture(params=database_backends())
def any_backend(request, tmp_path):
    """On either backend: a single Node keeps its diffs in files with both."""
    yield from node_in_process(tmp_path, request.param)


def fails_once(monkeypatch, module, name: str, which) -> list[int]:
    """Make `module.name` (an fdatasync) fail with EIO the first time `which(fd)` holds; the
    disk works again afterwards. Returns the failures seen."""
    real = getattr(module, name)
    failed: list[int] = []

    def flaky(target):
        if not failed and which(target):
            failed.append(1)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(target)

    monkeypatch.setattr(module, name, flaky)
    return failed


def refused_for_storage(answer) -> bool:
    return answer.status_code == 503 and answer.json["error"]["code"] == "storage_unavailable"


def test_after_a_failed_flush_of_the_wal_nothing_more_is_acknowledged(in_process, monkeypatch):
    from fedgrid_server import database as database_module

    name, worker, key = place(in_process, max_diffs=3, cycle_length=600)
    (other, other_key), = more_places(in_process, name, 1)
    failed = fails_once(monkeypatch, database_module, "_sync_file",
                        lambda path: path.endswith("-wal"))
    assert refused_for_storage(send_report(in_process, worker, key))
    assert failed  # the WAL's flush failed; the next one would work
    # The disk works again, but what the failed flush dropped may be gone: no success.
    assert refused_for_storage(send_report(in_process, other, other_key))
    # Nor any other write: a new device's place, a new model.
    worker_answer = in_process.post("/model-centric/authenticate", json={"model_name": name})
    assert refused_for_storage(worker_answer), worker_answer.json
    health = in_process.get("/health")
    assert (health.status_code, health.json["storage"]) == (503, "failed")
    # Reads go on.
    assert in_process.get("/model-centric/cycles", query_string={"name": name},
                          headers={"Authorization": "Bearer admin-token"}).status_code == 200


def test_after_a_failed_flush_of_a_diff_file_no_report_is_acknowledged(any_backend, monkeypatch):
    from fedgrid_node.cycles import diff_files as diff_files_module

    in_process = any_backend
    name, worker, key = place(in_process, max_diffs=3, cycle_length=600)
    (other, other_key), = more_places(in_process, name, 1)
    failed = fails_once(monkeypatch, diff_files_module.os, "fdatasync",
                        lambda fd: os.readlink(f"/proc/self/fd/{fd}").endswith(".diffs"))
    assert refused_for_storage(send_report(in_process, worker, key))
    assert failed
    assert refused_for_storage(send_report(in_process, other, other_key))
    health = in_process.get("/health")
    assert (health.status_code, health.json["storage"]) == (503, "failed")


def test_a_full_disk_is_no_failed_flush(any_backend, monkeypatch):
    """A write refused for room (ENOSPC) stored nothing and dropped nothing: the next report,
    once there is room, is taken (test_diff_files.py), and the Node stays healthy."""
    from fedgrid_node.cycles import diff_files as diff_files_module

    in_process = any_backend
    name, worker, key = place(in_process, max_diffs=3, cycle_length=600)

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(diff_files_module.os, "pwrite", full)
    assert refused_for_storage(send_report(in_process, worker, key))
    monkeypatch.undo()
    assert send_report(in_process, worker, key).status_code == 200
    health = in_process.get("/health")
    assert (health.status_code, health.json["storage"]) == (200, "ok")
