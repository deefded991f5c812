"""The Node's tables.

One hosted *process* is a model name + version with its configs, plans and checkpoints. Devices
become *workers* bound to one process; each *cycle* hands *assignments* to workers, and each
assignment holds at most one report, whose diff bytes live in `report_diffs` so listing
assignments never loads tensors.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    # Naive UTC everywhere: SQLite has no time zones, and mixing aware/naive values breaks compares.
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Process(Base):
    """A hosted federated-learning process: one model name and version."""

    __tablename__ = "processes"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_process_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    client_config: Mapped[dict] = mapped_column(JSON)
    server_config: Mapped[dict] = mapped_column(JSON)
    # A ProcessStatus: active | paused | stopped | finished (a string: new states need no migration)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    plans: Mapped[list[Plan]] = relationship(back_populates="process", cascade="all, delete-orphan")
    model: Mapped[Model] = relationship(back_populates="process", cascade="all, delete-orphan")
    cycles: Mapped[list[Cycle]] = relationship(back_populates="process", cascade="all, delete-orphan")


class Plan(Base):
    """A serialized training plan (kind "client") or the optional averaging plan ("averaging")."""

    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("process_id", "name", name="uq_plan_process_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[int] = mapped_column(ForeignKey("processes.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="client")
    content_hash: Mapped[str] = mapped_column(String(128))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    process: Mapped[Process] = relationship(back_populates="plans")


class Model(Base):
    """The model of a process; its parameters live in numbered checkpoints."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[int] = mapped_column(
        ForeignKey("processes.id", ondelete="CASCADE"), unique=True
    )

    process: Mapped[Process] = relationship(back_populates="model")
    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="Checkpoint.number"
    )


class Checkpoint(Base):
    """Model parameters (safetensors bytes). Number 1 is the hosted model; `latest` is the highest."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_checkpoint_model_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # The server strategy's memory after this checkpoint (momentum, moments), safetensors bytes.
    strategy_state: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The held-out score of these parameters on the process's evaluation set ({"accuracy",
    # "loss", "num_samples", "evaluation_set"}); written after the checkpoint, off the cycle's path.
    test_metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    model: Mapped[Model] = relationship(back_populates="checkpoints")


class Cycle(Base):
    """One round of training on checkpoint `checkpoint_number`, open until `deadline`."""

    __tablename__ = "cycles"
    __table_args__ = (UniqueConstraint("process_id", "sequence", name="uq_cycle_process_sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[int] = mapped_column(ForeignKey("processes.id", ondelete="CASCADE"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    checkpoint_number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deadline: Mapped[datetime] = mapped_column(DateTime)
    # A CycleStatus: open | completed (aggregated into a new checkpoint) | abandoned
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Filled when the cycle closes: what happened, for metrics and the dashboard.
    summary: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Selection figures of the open cycle, written as they change so a restart keeps them.
    requests: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rejected: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # reason -> count

    process: Mapped[Process] = relationship(back_populates="cycles")
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="cycle", cascade="all, delete-orphan"
    )


class Worker(Base):
    """A device, authenticated for exactly one process (PyGrid issue 628: ids were global)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    process_id: Mapped[int] = mapped_column(ForeignKey("processes.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Last measured speeds: Mbit/s for bandwidth, milliseconds for ping.
    ping_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    download_mbps: Mapped[float | None] = mapped_column(Float, nullable=True)
    upload_mbps: Mapped[float | None] = mapped_column(Float, nullable=True)


class Assignment(Base):
    """A worker's place in a cycle, keyed by a secret request key; at most one report."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("cycle_id", "worker_id", name="uq_assignment_cycle_worker"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("cycles.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    request_key: Mapped[str] = mapped_column(String(128), unique=True)
    # An AssignmentStatus: accepted | reported | expired (lease ran out) | dropped (cycle closed)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    assigned_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The end of the lease: a report after it is refused and the place goes to another device.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    num_samples: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Where a single Node stored the report's diff in its cycle's file (cycles/diff_files.py):
    # written in the transaction that marks the assignment reported. Null for a diff kept in
    # `report_diffs` (replicas), for evaluations and for secure cycles.
    diff_offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    diff_length: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    diff_checksum: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # An AssignmentTask: train (reports a diff) | evaluate (reports metrics of the cycle's
    # checkpoint only; never counts toward the cycle's goal)
    task: Mapped[str] = mapped_column(String(16), default="train", server_default="train")

    cycle: Mapped[Cycle] = relationship(back_populates="assignments")
    worker: Mapped[Worker] = relationship()


class ReportDiff(Base):
    """The diff bytes of a replica's report (safetensors, as received), kept until the cycle's
    checkpoint is written. A single Node keeps its diffs in per-cycle files instead."""

    __tablename__ = "report_diffs"

    assignment_id: Mapped[int] = mapped_column(
        ForeignKey("assignments.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary)


class EvaluationSet(Base):
    """A process's held-out test set (safetensors `features` and `labels`): the Node scores every
    checkpoint on it. A new upload replaces it (and the scores made with it)."""

    __tablename__ = "evaluation_sets"
    # Scores name the set they were made with by its id, so an id must never come back after a
    # replacement (SQLite reuses the highest rowid once deleted unless told not to).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[int] = mapped_column(
        ForeignKey("processes.id", ondelete="CASCADE"), unique=True
    )
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    num_samples: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class NetworkMembershipToken(Base):
    """The node token a Network answered to this Node's first join, kept where every replica of
    a `--cluster` Node finds it (they share this database, not a data directory). A Node run as
    one process keeps it in its data directory instead (network_membership.py)."""

    __tablename__ = "network_membership_tokens"

    network_url: Mapped[str] = mapped_column(String(512), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_token: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SecureRound(Base):
    """The secure rounds of an open cycle that aggregates securely (cycles/secagg_cycle.py): what
    a restarted Node needs, with the stored messages, to take them up where they were. Deleted
    with the messages when the cycle closes."""

    __tablename__ = "secure_rounds"

    cycle_id: Mapped[int] = mapped_column(
        ForeignKey("cycles.id", ondelete="CASCADE"), primary_key=True
    )
    # The cohort's assignment ids in acceptance order: device i is cohort[i - 1].
    cohort: Mapped[list] = mapped_column(JSON)
    # The seed the neighbour graph is drawn from, so a replay draws the same graph.
    graph_seed: Mapped[int] = mapped_column(BigInteger)
    # A SecAggAggregator round number (1 advertise-keys .. 4 unmask) and when it closes.
    round: Mapped[int] = mapped_column(Integer)
    round_closes: Mapped[datetime] = mapped_column(DateTime)
    # Why the rounds aborted; set, they stay aborted after a restart.
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)


class SecureMessage(Base):
    """One acknowledged secure-round message of a device (public keys, share boxes the Node
    cannot open, a masked input, unmask shares), written before its acknowledgement. A masked
    input carries its own self mask and pairwise masks: alone, it says nothing of the update."""

    __tablename__ = "secure_messages"

    cycle_id: Mapped[int] = mapped_column(
        ForeignKey("cycles.id", ondelete="CASCADE"), primary_key=True
    )
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    device: Mapped[int] = mapped_column(Integer, primary_key=True)  # the device's cohort index
    data: Mapped[bytes] = mapped_column(LargeBinary)
