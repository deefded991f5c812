"""The Network's tables: one registry of Nodes and what each hosts (from its last heartbeat)."""

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
    """A registered Node. Its credential is the SHA-256 of the token it got when it first joined."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(512))
    token_hash: Mapped[str] = mapped_column(String(64))
    software_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set by the Network when a heartbeat (or the join) arrives: no trust in the Node's clock.
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set when the Node said goodbye (graceful shutdown); cleared by its next join.
    left_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # What the Node says about itself: "ok", or "degraded" (e.g. its database is unreachable).
    health: Mapped[str] = mapped_column(String(16), default="ok")
    # Devices holding an assignment in an open cycle (training now), and the Node's load figure.
    devices: Mapped[int] = mapped_column(Integer, default=0)
    load: Mapped[float] = mapped_column(Float, default=0.0)

    processes: Mapped[list[HostedProcess]] = relationship(
        back_populates="node", cascade="all, delete-orphan", order_by="HostedProcess.name"
    )


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
