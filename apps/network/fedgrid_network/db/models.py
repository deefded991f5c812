"""The Network's tables: one registry of Nodes, their processes (replicas) and what each Node
hosts (from its last heartbeat)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    # Naive UTC everywhere, as on the Node: SQLite keeps no time zones.
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class NodeRecord(Base):
    """A registered Node: one deployment, whatever its number of processes (replicas). Its
    credential is the SHA-256 of the token it got when it first joined."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(512))
    token_hash: Mapped[str] = mapped_column(String(64))
    software_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    processes: Mapped[list[HostedProcess]] = relationship(
        back_populates="node", cascade="all, delete-orphan", order_by="HostedProcess.name"
    )
    replicas: Mapped[list[NodeReplica]] = relationship(
        back_populates="node", cascade="all, delete-orphan", order_by="NodeReplica.replica"
    )


class NodeReplica(Base):
    """One process of a Node, as its heartbeats describe it. A Node run as one process (no
    replica id in its calls) has one replica named "" (empty)."""

    __tablename__ = "node_replicas"

    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    replica: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Set by the Network when a heartbeat (or the join) arrives: no trust in the Node's clock.
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set when the replica said goodbye (graceful shutdown); cleared by its next join or heartbeat.
    left_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # What the replica says: "ok", or "degraded" (e.g. its database is unreachable).
    health: Mapped[str] = mapped_column(String(16), default="ok")
    # Devices holding an assignment in an open cycle (training now), and the load figure, as
    # this replica's last heartbeat counted them.
    devices: Mapped[int] = mapped_column(Integer, default=0)
    load: Mapped[float] = mapped_column(Float, default=0.0)

    node: Mapped[NodeRecord] = relationship(back_populates="replicas")


class HostedProcess(Base):
    """A model (name, version) a Node hosts, with its cycle status as of the last heartbeat."""

    __tablename__ = "hosted_processes"
    __table_args__ = (
        UniqueConstraint("node_id", "name", "version", name="uq_hosted_node_name_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[str] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str] = mapped_column(String(64))
    # open (a cycle is accepting devices) | waiting (between cycles) | finished (all cycles done)
    status: Mapped[str] = mapped_column(String(16))
    cycle: Mapped[int | None] = mapped_column(Integer, nullable=True)
    checkpoint: Mapped[int | None] = mapped_column(Integer, nullable=True)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    reported: Mapped[int] = mapped_column(Integer, default=0)
    deadline: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    node: Mapped[NodeRecord] = relationship(back_populates="processes")
