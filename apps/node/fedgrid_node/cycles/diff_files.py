"""Where a single Node keeps the diffs of its open cycles: one append-only file per cycle.

A report is durable once its diff is on disk *and* its assignment row says where. So the diff is
appended to `<data dir>/diffs/cycle-<id>.diffs` first, on the thread pool and outside the cycle's
lock; then, under the lock, a small transaction marks the assignment reported with the diff's
offset, length and CRC-32C; the report is answered once both the file (`fdatasync`, shared by the
appends written meanwhile) and that commit are on the disk, the two flushes running side by side.
Until the commit the bytes belong to no one: a crash in between, or a report refused under the
lock, leaves bytes that no row points to, which are never read and go with the file. A machine
that stops (power, kernel) after the commit but before the file's flush can leave a row whose
bytes never reached the disk: its report was never answered, so a restart opens its place again
for the device's resend (engine.py, `_reopen_unreadable`).

Why not the database, as before: writing a megabyte into SQLite or PostgreSQL *is* the cost of a
report. A lone SQLite commit of a 1 MiB blob took ~7.8 ms here against ~0.5 ms for the small
update and ~1.7 ms for an fsync'd append of the same bytes to a file; and the blob's transaction
held the cycle's lock, so reports were serialised behind each other's megabyte
(apps/node/benchmarks/report_ingest.py measures it end to end). A cycle's diffs are read back at
most once more (a restart's restore, a coordinate-wise rule or hosted averaging plan at the
close), sequentially, and the whole file is deleted once the cycle's checkpoint is committed.

Replicas (`--cluster`) keep their diffs in the shared database (`report_diffs`): a replica's
local disk is not the deployment's. So does an engine made without a directory.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent.monkey
import google_crc32c
from sqlalchemy import select

from fedgrid_server.database import GroupFlush

from ..db.models import Assignment, ReportDiff
from .off_hub import run_off_hub
from .statuses import AssignmentStatus, AssignmentTask

log = logging.getLogger("fedgrid.node.diffs")

FILE_NAME = re.compile(r"^cycle-(\d+)\.diffs$")


@dataclass(frozen=True)
class DiffLocation:
    """Where an acknowledged diff lies in its cycle's file (kept on its assignment row)."""

    offset: int
    length: int
    checksum: int  # CRC-32C of the bytes: a damaged file is told apart from a bad report


class DiffUnreadable(Exception):
    """A stored diff's bytes are missing or do not match their checksum (the disk's fault)."""


def checksum(data) -> int:
    """CRC-32C (Castagnoli) of the bytes, in hardware where the CPU has it: ~0.03 ms a MiB here
    against ~0.15 ms for zlib's CRC-32, on every report."""
    # (Its C function takes bytes only: a WebSocket frame's view is copied, ~0.05 ms a MiB.)
    return google_crc32c.value(data if isinstance(data, bytes) else bytes(data))


# Diffs are written with O_DIRECT where the file system takes it: straight from a page-aligned
# buffer to the disk, past the page cache. Buffered, ten pool threads writing 1 MiB diffs into
# one file spun on its inode lock (`rwsem_spin_on_owner`, ~10 % of the Node's CPU) and the page
# cache's bookkeeping per megabyte (`copy_folio_from_iter_atomic`) was a quarter of it (`perf`
# under apps/node/benchmarks/report_ingest.py, 64 devices); copying the diff into an aligned
# buffer and writing it direct costs ~0.15 ms a MiB. Offsets are then multiples of ALIGNMENT and
# each write is padded to one (the padding is never read: a row gives the diff's own length).
# File systems that refuse O_DIRECT (tmpfs), and diffs over KEPT_BUFFER, get buffered writes,
# one at a time.
ALIGNMENT = 4096
# Aligned buffers are kept for reuse, a few of them (one per concurrent write).
KEPT_BUFFER = 16 * 1024 * 1024
KEPT_BUFFERS = 8
_native_lock = gevent.monkey.get_original("_thread", "allocate_lock")
# (Native locks: the Node monkey-patches `threading`, whose locks are for greenlets of one
# thread, not for the pool's threads.)
_BUFFERS_LOCK = _native_lock()
_buffers: list[mmap.mmap] = []
_BUFFERED_WRITING = _native_lock()  # waiters sleep instead of spinning on the inode lock


def _take_buffer(size: int) -> mmap.mmap:
    with _BUFFERS_LOCK:
        for index, buffer in enumerate(_buffers):
            if len(buffer) >= size:
                return _buffers.pop(index)
    return mmap.mmap(-1, size)  # page-aligned


def _give_back(buffer: mmap.mmap) -> None:
    with _BUFFERS_LOCK:
        if len(_buffers) < KEPT_BUFFERS:
            _buffers.append(buffer)
            return
    buffer.close()


def _pwrite_all(fd: int, view, offset: int) -> None:
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)


def _write(fd: int, offset: int, data, direct_fd: int | None = None) -> int:
    """On the thread pool: the bytes at their offset (not yet flushed). Returns their checksum."""
    crc = checksum(data)
    if direct_fd is None or offset % ALIGNMENT or len(data) > KEPT_BUFFER:
        # (A larger diff is not copied into a buffer of its own: ten at once would double
        # what their bodies already hold.)
        with _BUFFERED_WRITING:
            _pwrite_all(fd, memoryview(data), offset)
        return crc
    padded = -(-len(data) // ALIGNMENT) * ALIGNMENT
    buffer = _take_buffer(padded)
    try:
        buffer[:len(data)] = data
        buffer[len(data):padded] = bytes(padded - len(data))
        with memoryview(buffer)[:padded] as view:
            _pwrite_all(direct_fd, view, offset)
    finally:
        _give_back(buffer)
    return crc


def _check_then_write(fd: int, offset: int, data, check: Callable[[], Any] | None,
                      direct_fd: int | None):
    """On the thread pool: the diff's check (nothing is written if it fails), then its bytes.
    One hand-off for both. Returns (check's result, checksum)."""
    checked = check() if check is not None else None
    return checked, _write(fd, offset, data, direct_fd)


def _read_checked(fd: int, location: DiffLocation) -> bytes:
    data = os.pread(fd, location.length, location.offset)
    # A diff stored before CRC-32C carries zlib's CRC-32 (a cycle left open across the upgrade):
    # computed only for a diff whose CRC-32C does not match.
    if len(data) != location.length or (location.checksum != checksum(data)
                                         and location.checksum != zlib.crc32(data)):
        raise DiffUnreadable(f"{location.length} bytes at offset {location.offset} are "
                             f"{'short' if len(data) != location.length else 'damaged'}")
    return data


class DiffFiles:
    """The per-cycle diff files of one Node. Offsets are handed out on the hub (one thread, no
    yield between reading and moving a file's end), so concurrent appends never overlap."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}
        self._ends: dict[int, int] = {}
        # Pool threads using a cycle's descriptor: a discarded file's descriptor is closed by
        # its last user, never under one (the number could be reused by another file).
        self._users: dict[int, int] = {}
        # A file's O_DIRECT descriptor for writes, beside the one for reads and flushes (None
        # where the file system refuses O_DIRECT); closed with it.
        self._direct: dict[int, int | None] = {}
        self._flushes: dict[int, GroupFlush] = {}  # per cycle: see `flush`
        # Set when the disk failed to flush a file: from then on nothing is appended or
        # acknowledged (`Database.storage_failure` says why), until a restart.
        self.failure: OSError | None = None

    def path(self, cycle_id: int) -> Path:
        return self.directory / f"cycle-{cycle_id}.diffs"

    def _fd(self, cycle_id: int) -> int:
        fd = self._fds.get(cycle_id)
        if fd is None:
            path = self.path(cycle_id)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if created:  # the file's name must survive a crash as well as its bytes
                directory = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
            self._fds[cycle_id] = fd
            try:
                self._direct[fd] = os.open(path, os.O_WRONLY | os.O_DIRECT)
            except OSError:  # (EINVAL: tmpfs and the like)
                self._direct[fd] = None
            # Bytes a crash left past the last acknowledged diff are never reused: appends
            # go after them.
            self._ends[cycle_id] = os.fstat(fd).st_size
        return fd

    def _close(self, fd: int) -> None:
        direct = self._direct.pop(fd, None)
        if direct is not None:
            os.close(direct)
        os.close(fd)

    def _use(self, cycle_id: int, work, *args, fd: int | None = None):
        fd = self._fd(cycle_id) if fd is None else fd
        self._users[fd] = self._users.get(fd, 0) + 1
        try:
            return run_off_hub(work, fd, *args)
        finally:
            self._users[fd] -= 1
            if not self._users[fd]:
                del self._users[fd]
                if self._fds.get(cycle_id) != fd:  # discarded meanwhile
                    self._close(fd)

    def append(self, cycle_id: int, data, check: Callable[[], Any] | None = None
               ) -> tuple[DiffLocation, Any]:
        """Run `check` (the diff's validation), then append the diff, on one pool thread. The
        bytes are not on the disk yet: `flush` puts them there. Returns its location and what
        `check` returned; what `check` raises is raised, with nothing written.

        The caller checks that the cycle is open right before (with no yield in between): an
        append after `discard` would make the file anew."""
        if self.failure is not None:
            raise self.failure
        fd = self._fd(cycle_id)
        direct = self._direct.get(fd)
        offset = self._ends[cycle_id]
        if direct is not None:
            offset = -(-offset // ALIGNMENT) * ALIGNMENT
        end = self._ends[cycle_id] = offset + len(data)
        try:
            checked, checksum = self._use(cycle_id, _check_then_write, offset, data, check,
                                          direct)
        except BaseException:
            if self._ends.get(cycle_id) == end:  # nothing was appended after: reuse the room
                self._ends[cycle_id] = offset
            raise
        return DiffLocation(offset, len(data), checksum), checked

    def flush(self, cycle_id: int) -> None:
        """Return once every diff appended to the cycle's file so far is on the disk: one
        `fdatasync` for all the appends written meanwhile (each is a journal commit of the
        file's new size on ext4; one per report was most of the disk's work). Raises the
        failure of a flush, and of every one after it (`_flush`)."""
        if cycle_id not in self._fds:
            return  # discarded: its cycle closed, and nothing of it is read any more
        flush = self._flushes.get(cycle_id)
        if flush is None:
            flush = self._flushes[cycle_id] = GroupFlush(lambda: self._flush(cycle_id))
        flush.wait()

    def _flush(self, cycle_id: int) -> None:
        if self.failure is not None:  # never tried again (and its waiters fail too)
            raise self.failure
        fd = self._fds.get(cycle_id)
        if fd is not None:  # (discarded: its cycle closed without these appends)
            try:
                self._use(cycle_id, os.fdatasync, fd=fd)
            except OSError as failure:
                if self.failure is None:
                    log.critical("the disk failed to flush %s (%s): no more reports are "
                                 "taken; restart this Node once the disk is sound",
                                 self.path(cycle_id), failure)
                self.failure = failure
                raise

    def read(self, cycle_id: int, location: DiffLocation) -> bytes:
        try:
            return self._use(cycle_id, _read_checked, location)
        except FileNotFoundError as missing:
            raise DiffUnreadable(f"{self.path(cycle_id)} is gone") from missing

    def discard(self, cycle_id: int) -> None:
        """After the cycle's close committed, once it is marked closed: its diffs are in the
        checkpoint. An append still writing finishes into the unlinked file."""
        fd = self._fds.pop(cycle_id, None)
        self._ends.pop(cycle_id, None)
        self._flushes.pop(cycle_id, None)
        if fd is not None and fd not in self._users:
            self._close(fd)
        self.path(cycle_id).unlink(missing_ok=True)

    def sweep(self, open_cycle_ids: set[int]) -> None:
        """At start: delete the files of cycles that are no longer open (a crash between a
        close's commit and its `discard`)."""
        for entry in self.directory.iterdir():
            match = FILE_NAME.match(entry.name)
            if match and int(match.group(1)) not in open_cycle_ids:
                log.info("deleting %s: its cycle is closed", entry.name)
                entry.unlink(missing_ok=True)

    def close(self) -> None:
        for fd in self._fds.values():
            if fd not in self._users:
                self._close(fd)
        self._fds.clear()
        self._ends.clear()
        self._flushes.clear()


def reported_diffs(session, cycle_id: int) -> list[tuple[int, int, dict | None]]:
    """(assignment id, samples, metrics) of the cycle's acknowledged reports that carry a diff,
    in the order they were acknowledged (so a float64 sum is rebuilt exactly)."""
    return session.execute(
        select(Assignment.id, Assignment.num_samples, Assignment.metrics)
        .where(Assignment.cycle_id == cycle_id,
               Assignment.task == AssignmentTask.TRAIN,
               # Acknowledged only: a replica stages a diff before its decision.
               Assignment.status == AssignmentStatus.REPORTED,
               # A secure cycle's survivors are reported without any diff of their own.
               (Assignment.diff_length.is_not(None)
                | Assignment.id.in_(select(ReportDiff.assignment_id))))
        .order_by(Assignment.reported_at, Assignment.id)
    ).all()


def read_diff(session, files: DiffFiles | None, assignment_id: int) -> bytes:
    """One stored diff, as received (maybe encoded), from its cycle's file or the database.

    One query per diff, by key: a single query over every diff was buffered whole by the drivers
    (test_restore_memory.py)."""
    cycle_id, offset, length, checksum = session.execute(
        select(Assignment.cycle_id, Assignment.diff_offset, Assignment.diff_length,
               Assignment.diff_checksum).where(Assignment.id == assignment_id)).one()
    if length is not None:
        if files is None:
            raise DiffUnreadable(f"assignment {assignment_id}'s diff is in a file, and this "
                                 "Node keeps none")
        return files.read(cycle_id, DiffLocation(offset, length, checksum))
    data = session.scalar(select(ReportDiff.data).where(ReportDiff.assignment_id == assignment_id))
    if data is None:
        raise DiffUnreadable(f"assignment {assignment_id}'s diff is not stored")
    return data


__all__ = ["DiffFiles", "DiffLocation", "DiffUnreadable", "read_diff",
           "reported_diffs"]
