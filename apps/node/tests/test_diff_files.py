"""A single Node's report diffs live in per-cycle files (cycles/diff_files.py): written and
flushed before the row that locates them, read back at a restart, deleted with the cycle.

Real Node processes on SQLite and PostgreSQL; the database is read directly to see where each
acknowledged diff went.
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy

from fedgrid_node.config import NodeConfig
from fedgrid_plans import tensors
from fedgrid_server.config import normalize_database_url
from tests.support.api_client import HttpApi
from tests.support.databases import database_backends
from tests.support.models import logistic_regression, random_diff

from .test_cycle_engine import host, report, request_place
from .test_late_reports import cycle_one, place
from .test_late_reports import report as send_report


def query(node, sql: str):
    url = node.env.get("DATABASE_URL") or f"sqlite:///{node.data_dir / NodeConfig.database_file}"
    engine = sqlalchemy.create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text(sql)).all()
    finally:
        engine.dispose()


def diff_files(node):
    return sorted(path.name for path in (node.data_dir / "diffs").glob("cycle-*.diffs"))


def expected_checkpoint(reports):
    """FedAvg of (seed, num_samples): checkpoint 1 minus the weighted mean of the diffs."""
    start = tensors.decode(logistic_regression()[1])
    total = sum(n for _, n in reports)
    diffs = {seed: tensors.decode(tensors.encode(random_diff(logistic_regression()[1], seed)))
             for seed, _ in reports}
    return {name: value - sum(diffs[seed][name].astype(np.float64) * n for seed, n in reports)
            / total for name, value in start.items()}


def assert_checkpoint(api, number, reports):
    content = api.call("retrieve-model", {"name": "files", "checkpoint": number},
                       admin=True).content
    for name, value in tensors.decode(content).items():
        np.testing.assert_allclose(value, expected_checkpoint(reports)[name], rtol=1e-5,
                                   atol=1e-6)


def two_of_three_reported(node, **server_config):
    """Host `files` with a goal of 3, take 3 places and report from the first 2 (seeds 0 and 1,
    5 and 6 samples)."""
    api = HttpApi(node.url, node.admin_token)
    host(api, "files", max_diffs=3, cycle_length=600, **server_config)
    places = [request_place(api, "files") for _ in range(3)]
    for index, (worker, body) in enumerate(places[:2]):
        assert report(api, worker, body, seed=index, num_samples=5 + index).status == 200
    return api, places


@pytest.mark.parametrize("backend", database_backends())
def test_acknowledged_diffs_are_in_the_cycle_file_and_go_with_the_cycle(node_factory, backend):
    node = node_factory(backend)
    api, places = two_of_three_reported(node)

    # Acknowledged: located on the assignment, in the file, none in the database's blob table.
    rows = query(node, "SELECT diff_offset, diff_length, diff_checksum FROM assignments "
                       "WHERE status = 'reported' ORDER BY diff_offset")
    cycle_id = query(node, "SELECT id FROM cycles WHERE status = 'open'")[0][0]
    assert query(node, "SELECT count(*) FROM report_diffs")[0][0] == 0
    assert diff_files(node) == [f"cycle-{cycle_id}.diffs"]
    content = (node.data_dir / "diffs" / f"cycle-{cycle_id}.diffs").read_bytes()
    sent = [tensors.encode(random_diff(logistic_regression()[1], seed)) for seed in (0, 1)]
    assert sorted(content[offset:offset + length] for offset, length, _ in rows) == sorted(sent)

    # The goal closes the cycle: the file goes, the checkpoint holds all three.
    worker, body = places[2]
    assert report(api, worker, body, seed=2, num_samples=7).status == 200
    assert api.call("cycles", {"name": "files"}, admin=True).body["cycles"][0]["status"] \
        == "completed"
    assert diff_files(node) == []
    assert_checkpoint(api, 2, [(0, 5), (1, 6), (2, 7)])


@pytest.mark.parametrize("backend", database_backends())
def test_a_restart_folds_the_files_and_sweeps_those_of_closed_cycles(node_factory, backend):
    node = node_factory(backend)
    api, places = two_of_three_reported(node)
    # What a crash between a close's commit and the deletion of its file leaves behind.
    leftover = node.data_dir / "diffs" / "cycle-987654.diffs"
    leftover.write_bytes(b"folded long ago")

    node.kill()
    node = node.restart()
    api = HttpApi(node.url, node.admin_token)
    assert not leftover.exists()
    # The two acknowledged reports were folded back from the file: one more reaches the goal.
    worker, body = places[2]
    assert report(api, worker, body, seed=2, num_samples=7).status == 200
    assert_checkpoint(api, 2, [(0, 5), (1, 6), (2, 7)])
    node.stop()


@pytest.mark.parametrize("backend", database_backends())
def test_a_damaged_diff_is_named_and_the_rest_restored(node_factory, backend):
    node = node_factory(backend)
    api, places = two_of_three_reported(node, min_diffs=1)
    (assignment_id, offset), = query(node, "SELECT id, diff_offset FROM assignments "
                                           "WHERE status = 'reported' ORDER BY diff_offset LIMIT 1")
    node.kill()
    path = next((node.data_dir / "diffs").glob("cycle-*.diffs"))
    with open(path, "r+b") as file:  # the disk's fault: one byte of the first diff flipped
        file.seek(offset + 100)
        byte = file.read(1)
        file.seek(offset + 100)
        file.write(bytes([byte[0] ^ 0xFF]))

    node = node.restart()
    api = HttpApi(node.url, node.admin_token)
    assert f"the report of assignment {assignment_id} is lost" in node.log_path.read_text()
    worker, body = places[2]
    assert report(api, worker, body, seed=2, num_samples=7).status == 200
    # Stopped at its third report: the average of the two diffs that could be read.
    assert api.call("stop-process", {"name": "files", "version": "1"}, admin=True).status == 200
    assert_checkpoint(api, 2, [(1, 6), (2, 7)])
    node.stop()


@pytest.mark.parametrize("backend", database_backends())
def test_a_committed_report_whose_diff_never_reached_the_disk_is_taken_again(node_factory,
                                                                            backend):
    """A report's row commits beside its diff's flush; the machine stops before the flush
    (here: the file is cut short where the second diff starts, as if its bytes never left the
    page cache). The report was never answered, so its device sends it again: after the restart
    its place is open, the resend is taken (not `report_duplicate`), and the checkpoint holds it
    once."""
    node = node_factory(backend)
    api, places = two_of_three_reported(node)
    (assignment_id, offset), = query(node, "SELECT id, diff_offset FROM assignments "
                                           "WHERE status = 'reported' ORDER BY diff_offset DESC "
                                           "LIMIT 1")
    node.kill()
    path = next((node.data_dir / "diffs").glob("cycle-*.diffs"))
    with open(path, "r+b") as file:
        file.truncate(offset)

    node = node.restart()
    api = HttpApi(node.url, node.admin_token)
    assert f"the report of assignment {assignment_id} is lost" in node.log_path.read_text()
    assert api.call("cycles", {"name": "files"}, admin=True).body["cycles"][0]["reported"] == 1
    worker, body = places[1]
    assert report(api, worker, body, seed=1, num_samples=6).status == 200
    worker, body = places[2]
    assert report(api, worker, body, seed=2, num_samples=7).status == 200
    assert_checkpoint(api, 2, [(0, 5), (1, 6), (2, 7)])
    node.stop()


@pytest.fixture
def in_process(tmp_path):
    """A Node in this process (its functions can be held or made to fail) and its test client."""
    from fedgrid_node.app import create_app

    app = create_app(NodeConfig(data_dir=tmp_path, admin_token="admin-token"))
    yield app.test_client()
    app.extensions["fedgrid"].engine.stop()


def test_a_full_disk_refuses_the_report_for_a_retry_and_keeps_nothing(in_process, monkeypatch):
    """The diff's write fails as on a full disk. The device hears a transient 503 (its SDK sends
    again later), the assignment stays open, and the resend is taken."""
    import errno
    import os

    from fedgrid_node.cycles import diff_files as diff_files_module

    name, worker, key = place(in_process, max_diffs=2, cycle_length=600)

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(diff_files_module.os, "pwrite", full)
    refused = send_report(in_process, worker, key)
    assert refused.status_code == 503 and refused.json["error"]["code"] == "storage_unavailable"
    monkeypatch.undo()
    taken = send_report(in_process, worker, key)
    assert taken.status_code == 200, taken.json
    assert cycle_one(in_process, name)["reported"] == 1


def test_a_failed_flush_after_the_commit_is_no_success_and_the_resend_is_a_duplicate(
        in_process, monkeypatch):
    """The diff's flush runs beside its commit. When the flush fails (a failing disk), the
    report is counted but the device hears no `success`: a transient 503; its resend is told
    `report_duplicate`, and the report counts once."""
    import errno
    import os

    from fedgrid_node.cycles import diff_files as diff_files_module

    name, worker, key = place(in_process, max_diffs=2, cycle_length=600)
    real_fdatasync = os.fdatasync

    def failing(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".diffs"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fdatasync(fd)

    monkeypatch.setattr(diff_files_module.os, "fdatasync", failing)
    refused = send_report(in_process, worker, key)
    assert refused.status_code == 503 and refused.json["error"]["code"] == "storage_unavailable"
    monkeypatch.undo()
    again = send_report(in_process, worker, key)
    assert (again.status_code, again.json["error"]["code"]) == (409, "report_duplicate")
    assert cycle_one(in_process, name)["reported"] == 1


def test_twins_of_a_report_sent_together_store_one_diff(in_process, tmp_path, monkeypatch):
    """While the first copy's diff is being written (held there), two more copies of the same
    report arrive. They wait for it, then find it counted: one 200, two `report_duplicate`, and
    the cycle's file holds the diff once."""
    import threading

    import gevent

    from fedgrid_node.cycles import diff_files as diff_files_module

    _, worker, key = place(in_process, max_diffs=2, cycle_length=600)
    writing, release = threading.Event(), threading.Event()
    real_write = diff_files_module._write

    def held_write(fd, offset, data, direct_fd=None):  # on a pool thread: hold the first write
        writing.set()
        release.wait(30)
        return real_write(fd, offset, data, direct_fd)

    monkeypatch.setattr(diff_files_module, "_write", held_write)
    first = gevent.spawn(send_report, in_process, worker, key)
    while not writing.is_set():
        gevent.sleep(0.001)  # (the hub must run for the first copy to reach its write)
    twins = [gevent.spawn(send_report, in_process, worker, key) for _ in range(2)]
    gevent.idle()  # the twins are in, waiting on the first
    release.set()
    answers = [greenlet.get(timeout=30) for greenlet in [first, *twins]]
    assert answers[0].status_code == 200, answers[0].json
    assert [(a.status_code, a.json["error"]["code"]) for a in answers[1:]] \
        == [(409, "report_duplicate")] * 2
    (path,) = (tmp_path / "diffs").glob("cycle-*.diffs")
    # Once: a direct write pads the diff to the next 4 KiB.
    size = len(tensors.encode(random_diff(logistic_regression()[1], 0)))
    assert path.stat().st_size in (size, -(-size // diff_files_module.ALIGNMENT)
                                   * diff_files_module.ALIGNMENT)


@pytest.mark.parametrize("direct", [True, False])
def test_appends_of_any_length_read_back_whether_written_direct_or_not(request, tmp_path,
                                                                       monkeypatch, direct):
    """Diffs of lengths that are not multiples of a block, written with O_DIRECT (padded, at
    aligned offsets) or through the page cache (a file system without O_DIRECT, or a diff over
    KEPT_BUFFER: here the last one), read back byte for byte, also after the files are opened
    anew as at a restart."""
    from fedgrid_node.cycles import diff_files as diff_files_module

    monkeypatch.setattr(diff_files_module, "KEPT_BUFFER", 65536)
    import os
    import tempfile
    from pathlib import Path

    from fedgrid_node.cycles.diff_files import ALIGNMENT, DiffFiles

    try:  # a tmpfs /tmp refuses O_DIRECT: then a directory on the repository's disk
        os.close(os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
    except OSError:
        on_disk = tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[3])
        request.addfinalizer(on_disk.cleanup)
        tmp_path = Path(on_disk.name)
    files = DiffFiles(tmp_path)
    if not direct:
        files._direct[files._fd(7)] = None
    rng = np.random.default_rng(4)
    blobs = [rng.bytes(length) for length in (1, ALIGNMENT - 1, ALIGNMENT, ALIGNMENT + 1, 70_001)]
    locations = [files.append(7, blob)[0] for blob in blobs]
    files.flush(7)
    assert (files._direct[files._fds[7]] is not None) == direct
    assert all(location.offset % ALIGNMENT == 0 for location in locations) == direct
    assert [files.read(7, location) for location in locations] == blobs
    files.close()
    again = DiffFiles(tmp_path)
    later = again.append(7, b"after a restart")[0]
    assert later.offset >= locations[-1].offset + len(blobs[-1])
    assert [again.read(7, location) for location in [*locations, later]] \
        == [*blobs, b"after a restart"]
    again.close()


def test_concurrent_appends_each_read_back_intact(tmp_path):
    """Forty diffs appended at once from as many greenlets (the pool's threads write them side by
    side, each from its own aligned buffer): every one reads back byte for byte."""
    import gevent

    from fedgrid_node.cycles.diff_files import DiffFiles

    files = DiffFiles(tmp_path)
    rng = np.random.default_rng(8)
    blobs = [rng.bytes(int(rng.integers(1, 300_000))) for _ in range(40)]
    appends = [gevent.spawn(files.append, 3, blob) for blob in blobs]
    locations = [greenlet.get(timeout=60)[0] for greenlet in appends]
    files.flush(3)
    assert [files.read(3, location) for location in locations] == blobs
    files.close()
