"""The registry of Nodes: joining, heartbeats, health, the model directory and device routing.

A model is one (Node, name, version). The same name hosted on two Nodes is two independent
models (each Node trains its own checkpoints), so the directory lists them apart and routing
says which one it picked, and why, when a name alone does not decide (`route`).

A Node is one deployment: one process, or several *replicas* (`--cluster`) sharing one database
and one address behind a load balancer, each naming itself (`replica`) in its join, heartbeats
and leave. A replica is *online* while its heartbeats arrive: the Network stamps each one with its
own clock, and a replica silent for longer than ``offline_after`` seconds (three missed
heartbeats by default) is *offline* until its next heartbeat; one that shut down gracefully says
so (`leave`) and is offline at once. The Node is online while any of its replicas is, so it stays
one entry in the directory however many replicas serve it. Health is computed when asked, so no
timer has to sweep the table.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from fedgrid_protocol.errors import ApiError
from fedgrid_protocol.network import HeartbeatRequest, HostedProcessReport, JoinRequest

from .credentials import new_node_token, token_hash, token_matches
from .db.database import Database
from .db.models import HostedProcess, NodeRecord, NodeReplica, utcnow

# The replica name of a Node that runs as one process (its calls carry no replica id).
SINGLE_PROCESS = ""
# A replica silent this long is forgotten at its Node's next heartbeat: a crashed or rescheduled
# process comes back under another id (<hostname>-<pid>), never under its old one.
FORGET_SILENT_REPLICA_AFTER = timedelta(hours=1)


def processes_to_store(processes: list[HostedProcessReport]) -> list[dict[str, Any]]:
    """The validated `processes` of a heartbeat as rows; a (name, version) given twice: the last."""
    rows = {(p.name, p.version): p.model_dump() for p in processes}
    return list(rows.values())


@dataclass(frozen=True)
class NodeState:
    """A Node's status and figures at one moment, from its replicas."""

    status: str  # online | degraded | offline
    last_heartbeat: datetime
    left: bool
    devices: int
    load: float
    replicas_online: int
    replicas_total: int


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


class Registry:
    def __init__(self, db: Database, *, heartbeat_interval: float, offline_after: float,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        # The Network's clock stamps heartbeats and judges them (tests move it instead of sleeping).
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.offline_after = offline_after
        # Devices routed to each Node since its last heartbeat: without this, every device asking
        # between two heartbeats would be sent to the same "least loaded" Node.
        self._routed: Counter[str] = Counter()
        self._routed_lock = threading.Lock()

    # ----------------------------------------------------------------------------- membership

    def join(self, joining: JoinRequest) -> dict:
        """A validated join (`fedgrid_protocol.network.JoinRequest`)."""
        node_id = joining.node_id
        now = self.clock()
        try:
            return self._join(joining, now)
        except IntegrityError:
            # Two first joins of one id raced and the other one won: this one holds no token.
            raise ApiError("node_id_taken", f"a Node with id {node_id!r} has just registered", 409
                           ) from None

    def _join(self, joining: JoinRequest, now: datetime) -> dict:
        node_id, node_token = joining.node_id, joining.node_token
        software_version = (joining.version or None) and joining.version[:32]
        with self.db.session() as session:
            node = session.get(NodeRecord, node_id, with_for_update=True)
            if node is None:
                token = new_node_token()
                node = NodeRecord(id=node_id, address=joining.address,
                                  token_hash=token_hash(token), software_version=software_version,
                                  joined_at=now)
                session.add(node)
                session.flush()  # the replica's row refers to it
                rejoined = False
            else:
                if not token_matches(node_token, node.token_hash):
                    raise ApiError(
                        "node_id_taken",
                        f"a Node with id {node_id!r} is already registered and this request does "
                        "not carry its node token; start the Node with its own data directory "
                        "(or, for replicas, --cluster and their shared database), pick another "
                        f"id, or ask the Network's admin to remove the old entry "
                        f"(DELETE /nodes/{node_id})",
                        409,
                    )
                token = node_token
                node.address = joining.address
                node.software_version = software_version
                rejoined = True
            # A joined replica counts as online at once; its first heartbeat follows the join.
            replica = self._replica(session, node_id, joining.replica)
            replica.last_heartbeat = now
            replica.left_at = None
        return {
            "status": "joined",
            "node_id": node_id,
            "node_token": token,
            "rejoined": rejoined,
            "heartbeat_interval": self.heartbeat_interval,
            "offline_after": self.offline_after,
        }

    @staticmethod
    def _replica(session, node_id: str, replica_id: str | None) -> NodeReplica:
        """The row of one replica of a Node (created if new); "" for a Node run as one process."""
        key = replica_id or SINGLE_PROCESS
        replica = session.get(NodeReplica, (node_id, key), with_for_update=True)
        if replica is None:
            replica = NodeReplica(node_id=node_id, replica=key, health="ok", devices=0, load=0.0)
            session.add(replica)
        return replica

    def _authenticated_node(self, session, node_id: str, node_token: str | None) -> NodeRecord:
        node = session.get(NodeRecord, node_id, with_for_update=True)
        if node is None:
            raise ApiError("node_unknown", f"no Node {node_id!r} is registered; join first", 404)
        if not token_matches(node_token, node.token_hash):
            raise ApiError(
                "node_token_invalid", f"the node token does not belong to Node {node_id!r}", 403
            )
        return node

    def heartbeat(self, beat: HeartbeatRequest, node_token: str | None) -> dict:
        """A validated heartbeat (`fedgrid_protocol.network.HeartbeatRequest`) of a Node's
        replica. The hosted processes are the Node's (its replicas share one database), so the
        latest heartbeat's replace them whichever replica sent it."""
        processes = processes_to_store(beat.processes)
        now = self.clock()
        with self.db.session() as session:
            node = self._authenticated_node(session, beat.node_id, node_token)
            replica = self._replica(session, node.id, beat.replica)
            replica.last_heartbeat = now
            replica.left_at = None
            replica.health = beat.health
            replica.devices = beat.devices
            replica.load = beat.load
            # Replicas that said goodbye, or stayed silent for long (a crashed container's id does
            # not come back: its successor has another), are forgotten.
            session.execute(delete(NodeReplica).where(
                NodeReplica.node_id == node.id,
                NodeReplica.replica != replica.replica,
                or_(NodeReplica.left_at.is_not(None),
                    NodeReplica.last_heartbeat < now - FORGET_SILENT_REPLICA_AFTER),
            ))
            session.execute(delete(HostedProcess).where(HostedProcess.node_id == node.id))
            session.add_all(HostedProcess(node_id=node.id, **p) for p in processes)
        with self._routed_lock:
            self._routed.pop(node.id, None)
        return {"status": "ok", "heartbeat_interval": self.heartbeat_interval}

    def leave(self, node_id: str, node_token: str | None, replica_id: str | None = None) -> dict:
        """A replica's goodbye takes that replica out (the Node is offline once none is left);
        a goodbye without a replica id is the whole Node's, as from a single-process Node."""
        now = self.clock()
        with self.db.session() as session:
            node = self._authenticated_node(session, node_id, node_token)
            leaving = select(NodeReplica).where(NodeReplica.node_id == node.id)
            if replica_id is not None:
                leaving = leaving.where(NodeReplica.replica == replica_id)
            for replica in session.scalars(leaving.with_for_update()).all():
                replica.left_at = now
        answer = {"status": "left", "node_id": node_id}
        if replica_id is not None:
            answer["replica"] = replica_id
        return answer

    def remove(self, node_id: str) -> dict:
        with self.db.session() as session:
            node = session.get(NodeRecord, node_id)
            if node is None:
                raise ApiError("node_unknown", f"no Node {node_id!r} is registered", 404)
            session.delete(node)
        return {"status": "removed", "node_id": node_id}

    # ----------------------------------------------------------------------------- reading

    def _replica_online(self, replica: NodeReplica, now: datetime) -> bool:
        return (replica.left_at is None
                and now - replica.last_heartbeat <= timedelta(seconds=self.offline_after))

    def _state(self, node: NodeRecord, now: datetime) -> NodeState:
        """A Node's status and figures, from its replicas as of `now`."""
        replicas = node.replicas
        online = [r for r in replicas if self._replica_online(r, now)]
        if any(r.health == "ok" for r in online):
            status = "online"
        else:
            status = "degraded" if online else "offline"
        last = max(replicas, key=lambda r: r.last_heartbeat, default=None)
        # The figures of the freshest online replica: replicas count devices in the database they
        # share, so each reports the whole Node's (a sum would count every device once per replica).
        freshest = max(online, key=lambda r: r.last_heartbeat, default=None)
        return NodeState(
            status=status,
            last_heartbeat=last.last_heartbeat if last else node.joined_at,
            left=bool(replicas) and all(r.left_at is not None for r in replicas),
            devices=freshest.devices if freshest else 0,
            load=freshest.load if freshest else 0.0,
            replicas_online=len(online),
            replicas_total=sum(1 for r in replicas if r.left_at is None),
        )

    def node_status(self, node: NodeRecord, now: datetime) -> str:
        return self._state(node, now).status

    def _describe(self, node: NodeRecord, now: datetime, *, processes: bool = True,
                  replicas: bool = False) -> dict:
        state = self._state(node, now)
        described = {
            "node_id": node.id,
            "address": node.address,
            "status": state.status,
            "last_heartbeat": _iso(state.last_heartbeat),
            "seconds_since_heartbeat": round((now - state.last_heartbeat).total_seconds(), 1),
            "joined_at": _iso(node.joined_at),
            "left": state.left,
            "version": node.software_version,
            "devices": state.devices,
            "load": state.load,
            "replicas": {"online": state.replicas_online, "total": state.replicas_total},
        }
        if processes:
            described["processes"] = [self._describe_process(p) for p in node.processes]
        if replicas:
            described["replicas"]["members"] = [
                self._describe_replica(r, now) for r in node.replicas if r.left_at is None
            ]
        return described

    def _describe_replica(self, replica: NodeReplica, now: datetime) -> dict:
        return {
            "replica": replica.replica or None,
            "status": ("online" if replica.health == "ok" else "degraded")
            if self._replica_online(replica, now) else "offline",
            "last_heartbeat": _iso(replica.last_heartbeat),
            "seconds_since_heartbeat": round((now - replica.last_heartbeat).total_seconds(), 1),
            "devices": replica.devices,
            "load": replica.load,
        }

    @staticmethod
    def _describe_process(process: HostedProcess) -> dict:
        return {
            "name": process.name,
            "version": process.version,
            "status": process.status,
            "cycle": process.cycle,
            "checkpoint": process.checkpoint,
            "accepted": process.accepted,
            "reported": process.reported,
            "deadline": _iso(process.deadline),
        }

    def list_nodes(self) -> list[dict]:
        now = self.clock()
        with self.db.session() as session:
            nodes = session.scalars(
                select(NodeRecord)
                .options(selectinload(NodeRecord.processes), selectinload(NodeRecord.replicas))
                .order_by(NodeRecord.id)
            ).all()
            return [self._describe(node, now) for node in nodes]

    def get_node(self, node_id: str) -> dict:
        now = self.clock()
        with self.db.session() as session:
            node = session.get(NodeRecord, node_id, options=[selectinload(NodeRecord.processes),
                                                             selectinload(NodeRecord.replicas)])
            if node is None:
                raise ApiError("node_unknown", f"no Node {node_id!r} is registered", 404)
            return self._describe(node, now, replicas=True)

    def _hosting(self, session, name: str, version: str | None, node_id: str | None = None):
        query = (
            select(HostedProcess, NodeRecord)
            .join(NodeRecord, NodeRecord.id == HostedProcess.node_id)
            .options(selectinload(NodeRecord.replicas))
            .where(HostedProcess.name == name)
        )
        if version is not None:
            query = query.where(HostedProcess.version == version)
        if node_id is not None:
            query = query.where(NodeRecord.id == node_id)
        return session.execute(query.order_by(NodeRecord.id, HostedProcess.version)).all()

    def search_model(self, name: str, version: str | None = None,
                     node_id: str | None = None) -> dict:
        now = self.clock()
        with self.db.session() as session:
            rows = self._hosting(session, name, version, node_id)
            nodes = [
                {**self._describe(node, now, processes=False), "process": self._describe_process(p)}
                for p, node in rows
            ]
        return {"model": name, "version": version, "nodes": nodes}

    def models(self) -> list[dict]:
        """The model directory: one entry per (Node, name, version), by name, version, Node.

        Never merged by name: two Nodes hosting "mnist" version 1 are two models with their own
        checkpoints, and each entry says where it lives (`node_id`, `address`).
        """
        now = self.clock()
        with self.db.session() as session:
            rows = session.execute(
                select(HostedProcess, NodeRecord)
                .join(NodeRecord, NodeRecord.id == HostedProcess.node_id)
                .options(selectinload(NodeRecord.replicas))
                .order_by(HostedProcess.name, HostedProcess.version, NodeRecord.id)
            ).all()
            return [
                {
                    "name": process.name,
                    "version": process.version,
                    "node_id": node.id,
                    "address": node.address,
                    "node_status": self.node_status(node, now),
                    "status": process.status,
                    "cycle": process.cycle,
                    "checkpoint": process.checkpoint,
                    "accepted": process.accepted,
                    "reported": process.reported,
                }
                for process, node in rows
            ]

    def route(self, name: str, version: str | None = None, node_id: str | None = None) -> dict:
        """The model a device should train: one (Node, name, version) on an online Node.

        `node_id` pins the Node. Otherwise, when several online Nodes host the name (independent
        models), the pick follows the rule below (docs/operations.md, "Routing"), `picked_by`
        says so, and `candidates` lists every online (Node, version) in that rule's order.
        """
        now = self.clock()
        with self.db.session() as session:
            rows = self._hosting(session, name, version, node_id)
            states = {node.id: self._state(node, now) for _, node in rows}
            candidates = [
                (process, node) for process, node in rows if states[node.id].status == "online"
            ]
            with self._routed_lock:
                ranked = sorted(
                    candidates,
                    key=lambda pn: (
                        pn[0].status == "finished",
                        states[pn[1].id].load + self._routed[pn[1].id],
                        states[pn[1].id].devices,
                        pn[1].id,
                    ),
                )
                if ranked:
                    self._routed[ranked[0][1].id] += 1
        if not ranked:
            shown = name if version is None else f"{name} version {version}"
            where = "registered with this Network" if node_id is None else f"{node_id!r}"
            details = {}
            if rows:
                details["unavailable_nodes"] = sorted({node.id for _, node in rows})
                message = (f"no healthy Node hosts {shown} right now (the Nodes hosting it are "
                           "offline); retry later")
            else:
                message = f"no Node {where} hosts {shown}"
            raise ApiError("model_not_found", message, 404, details=details or None)
        process, node = ranked[0]
        if node_id is not None:
            picked_by = "node_requested"
        elif len({candidate.id for _, candidate in ranked}) == 1:
            picked_by = "only_node"
        else:
            picked_by = "training_then_least_loaded"
        return {
            "node_id": node.id,
            "address": node.address,
            "model": process.name,
            "version": process.version,
            "status": process.status,
            "cycle": process.cycle,
            "picked_by": picked_by,
            "candidates": [
                {"node_id": n.id, "address": n.address, "version": p.version, "status": p.status,
                 "cycle": p.cycle}
                for p, n in ranked
            ],
        }

    def counts(self) -> dict[str, int]:
        now = self.clock()
        with self.db.session() as session:
            nodes = session.scalars(
                select(NodeRecord).options(selectinload(NodeRecord.replicas))
            ).all()
            statuses = Counter(self.node_status(node, now) for node in nodes)
        return {"online": statuses["online"], "degraded": statuses["degraded"],
                "offline": statuses["offline"], "total": len(nodes)}

