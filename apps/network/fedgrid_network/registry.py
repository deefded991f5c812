"""The registry of Nodes: joining, heartbeats, health, the model directory and device routing.

A Node is *online* while its heartbeats arrive: the Network stamps each one with its own clock,
and a Node silent for longer than ``offline_after`` seconds (three missed heartbeats by default)
is *offline* until its next heartbeat. A Node that shut down gracefully says so (`leave`) and is
offline at once. Health is computed when asked, so no timer has to sweep the table.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from fedgrid_protocol.errors import ApiError, invalid_request

from .credentials import new_node_token, token_hash, token_matches
from .db.database import Database
from .db.models import HostedProcess, NodeRecord, utcnow

NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PROCESS_STATUSES = ("open", "waiting", "finished")
MAX_PROCESSES = 1000


def check_node_id(value: Any) -> str:
    if not isinstance(value, str) or not NODE_ID.match(value):
        raise invalid_request(
            "node_id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="node_id",
        )
    return value


def check_address(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 512:
        raise invalid_request("address must be the Node's URL, e.g. http://alice:5000", field="address")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_request("address must be an http(s) URL, e.g. http://alice:5000", field="address")
    return value.rstrip("/")


def _int(value: Any, name: str, default: int | None = 0) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid_request(f"{name} must be a non-negative integer", field=name)
    return value


def _number(value: Any, name: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 <= value < 1e12):
        raise invalid_request(f"{name} must be a non-negative number", field=name)
    return float(value)


def _deadline(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise invalid_request("deadline must be an ISO 8601 time", field="deadline")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_request("deadline must be an ISO 8601 time", field="deadline") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_processes(value: Any) -> list[dict[str, Any]]:
    """The `processes` of a heartbeat: [{name, version, status, cycle, checkpoint, ...}]."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_PROCESSES:
        raise invalid_request(f"processes must be a list of at most {MAX_PROCESSES}", field="processes")
    parsed: dict[tuple[str, str], dict[str, Any]] = {}
    for item in value:
        if not isinstance(item, dict):
            raise invalid_request("each process must be an object", field="processes")
        name, version = item.get("name"), item.get("version")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise invalid_request("each process needs a name", field="processes")
        if not isinstance(version, str) or not version or len(version) > 64:
            raise invalid_request("each process needs a version (text)", field="processes")
        status = item.get("status", "open")
        if status not in PROCESS_STATUSES:
            raise invalid_request(
                f"process status must be one of {', '.join(PROCESS_STATUSES)}", field="processes"
            )
        parsed[(name, version)] = {
            "name": name,
            "version": version,
            "status": status,
            "cycle": _int(item.get("cycle"), "cycle", None),
            "checkpoint": _int(item.get("checkpoint"), "checkpoint", None),
            "accepted": _int(item.get("accepted"), "accepted"),
            "reported": _int(item.get("reported"), "reported"),
            "deadline": _deadline(item.get("deadline")),
        }
    return list(parsed.values())


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


class Registry:
    def __init__(self, db: Database, *, heartbeat_interval: float, offline_after: float) -> None:
        self.db = db
        self.heartbeat_interval = heartbeat_interval
        self.offline_after = offline_after
        # Devices routed to each Node since its last heartbeat: without this, every device asking
        # between two heartbeats would be sent to the same "least loaded" Node.
        self._routed: Counter[str] = Counter()
        self._routed_lock = threading.Lock()

    # ----------------------------------------------------------------------------- membership

    def join(self, node_id: Any, address: Any, node_token: Any, software_version: Any) -> dict:
        node_id = check_node_id(node_id)
        address = check_address(address)
        if software_version is not None and not isinstance(software_version, str):
            raise invalid_request("version must be text", field="version")
        now = utcnow()
        try:
            return self._join(node_id, address, node_token, software_version, now)
        except IntegrityError:
            # Two first joins of one id raced and the other one won: this one holds no token.
            raise ApiError("node_id_taken", f"a Node with id {node_id!r} has just registered", 409
                           ) from None

    def _join(self, node_id: str, address: str, node_token: Any, software_version: Any,
              now: datetime) -> dict:
        with self.db.session() as session:
            node = session.get(NodeRecord, node_id, with_for_update=True)
            if node is None:
                token = new_node_token()
                session.add(NodeRecord(
                    id=node_id, address=address, token_hash=token_hash(token),
                    software_version=(software_version or None) and software_version[:32],
                    joined_at=now, last_heartbeat=now, health="ok", devices=0, load=0.0,
                ))
                rejoined = False
            else:
                if not token_matches(node_token if isinstance(node_token, str) else None,
                                     node.token_hash):
                    raise ApiError(
                        "node_id_taken",
                        f"a Node with id {node_id!r} is already registered and this request does "
                        "not carry its node token; start the Node with its own data directory, "
                        "pick another id, or ask the Network's admin to remove the old entry "
                        f"(DELETE /nodes/{node_id})",
                        409,
                    )
                token = node_token
                node.address = address
                node.software_version = (software_version or None) and software_version[:32]
                node.last_heartbeat = now
                node.left_at = None
                rejoined = True
        return {
            "status": "joined",
            "node_id": node_id,
            "node_token": token,
            "rejoined": rejoined,
            "heartbeat_interval": self.heartbeat_interval,
            "offline_after": self.offline_after,
        }

    def _authenticated_node(self, session, node_id: Any, node_token: str | None) -> NodeRecord:
        node_id = check_node_id(node_id)
        node = session.get(NodeRecord, node_id, with_for_update=True)
        if node is None:
            raise ApiError("node_unknown", f"no Node {node_id!r} is registered; join first", 404)
        if not token_matches(node_token, node.token_hash):
            raise ApiError(
                "node_token_invalid", f"the node token does not belong to Node {node_id!r}", 403
            )
        return node

    def heartbeat(self, node_id: Any, node_token: str | None, data: dict[str, Any]) -> dict:
        processes = parse_processes(data.get("processes"))
        devices = _int(data.get("devices"), "devices")
        load = _number(data.get("load"), "load")
        health = data.get("health", "ok")
        if health not in ("ok", "degraded"):
            raise invalid_request("health must be 'ok' or 'degraded'", field="health")
        with self.db.session() as session:
            node = self._authenticated_node(session, node_id, node_token)
            node.last_heartbeat = utcnow()
            node.left_at = None
            node.health = health
            node.devices = devices
            node.load = load
            session.execute(delete(HostedProcess).where(HostedProcess.node_id == node.id))
            session.add_all(HostedProcess(node_id=node.id, **p) for p in processes)
        with self._routed_lock:
            self._routed.pop(node.id, None)
        return {"status": "ok", "heartbeat_interval": self.heartbeat_interval}

    def leave(self, node_id: Any, node_token: str | None) -> dict:
        with self.db.session() as session:
            node = self._authenticated_node(session, node_id, node_token)
            node.left_at = utcnow()
        return {"status": "left", "node_id": node.id}

    def remove(self, node_id: Any) -> dict:
        node_id = check_node_id(node_id)
        with self.db.session() as session:
            node = session.get(NodeRecord, node_id)
            if node is None:
                raise ApiError("node_unknown", f"no Node {node_id!r} is registered", 404)
            session.delete(node)
        return {"status": "removed", "node_id": node_id}

    # ----------------------------------------------------------------------------- reading

    def node_status(self, node: NodeRecord, now: datetime) -> str:
        if node.left_at is not None:
            return "offline"
        if now - node.last_heartbeat > timedelta(seconds=self.offline_after):
            return "offline"
        return "online" if node.health == "ok" else "degraded"

    def _describe(self, node: NodeRecord, now: datetime, *, processes: bool = True) -> dict:
        described = {
            "node_id": node.id,
            "address": node.address,
            "status": self.node_status(node, now),
            "last_heartbeat": _iso(node.last_heartbeat),
            "seconds_since_heartbeat": round((now - node.last_heartbeat).total_seconds(), 1),
            "joined_at": _iso(node.joined_at),
            "left": node.left_at is not None,
            "version": node.software_version,
            "devices": node.devices,
            "load": node.load,
        }
        if processes:
            described["processes"] = [self._describe_process(p) for p in node.processes]
        return described

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
        now = utcnow()
        with self.db.session() as session:
            nodes = session.scalars(
                select(NodeRecord).options(selectinload(NodeRecord.processes)).order_by(NodeRecord.id)
            ).all()
            return [self._describe(node, now) for node in nodes]

    def get_node(self, node_id: Any) -> dict:
        node_id = check_node_id(node_id)
        now = utcnow()
        with self.db.session() as session:
            node = session.get(NodeRecord, node_id, options=[selectinload(NodeRecord.processes)])
            if node is None:
                raise ApiError("node_unknown", f"no Node {node_id!r} is registered", 404)
            return self._describe(node, now)

    def _hosting(self, session, name: str, version: str | None):
        query = (
            select(HostedProcess, NodeRecord)
            .join(NodeRecord, NodeRecord.id == HostedProcess.node_id)
            .where(HostedProcess.name == name)
        )
        if version is not None:
            query = query.where(HostedProcess.version == version)
        return session.execute(query.order_by(NodeRecord.id, HostedProcess.version)).all()

    def search_model(self, name: Any, version: Any = None) -> dict:
        name, version = _model_query(name, version)
        now = utcnow()
        with self.db.session() as session:
            rows = self._hosting(session, name, version)
            nodes = [
                {**self._describe(node, now, processes=False), "process": self._describe_process(p)}
                for p, node in rows
            ]
        return {"model": name, "version": version, "nodes": nodes}

    def models(self) -> list[dict]:
        """The model directory: each (name, version) with the Nodes hosting it."""
        now = utcnow()
        directory: dict[tuple[str, str], dict] = {}
        with self.db.session() as session:
            rows = session.execute(
                select(HostedProcess, NodeRecord)
                .join(NodeRecord, NodeRecord.id == HostedProcess.node_id)
                .order_by(HostedProcess.name, HostedProcess.version, NodeRecord.id)
            ).all()
            for process, node in rows:
                entry = directory.setdefault(
                    (process.name, process.version),
                    {"name": process.name, "version": process.version, "nodes": []},
                )
                entry["nodes"].append({
                    "node_id": node.id,
                    "status": self.node_status(node, now),
                    "process_status": process.status,
                    "cycle": process.cycle,
                    "checkpoint": process.checkpoint,
                })
        return list(directory.values())

    def route(self, name: Any, version: Any = None) -> dict:
        """A healthy Node hosting the model: open processes first, then the least loaded."""
        name, version = _model_query(name, version)
        now = utcnow()
        with self.db.session() as session:
            rows = self._hosting(session, name, version)
            candidates = [
                (process, node) for process, node in rows if self.node_status(node, now) == "online"
            ]
            with self._routed_lock:
                ranked = sorted(
                    candidates,
                    key=lambda pn: (
                        pn[0].status == "finished",
                        pn[1].load + self._routed[pn[1].id],
                        pn[1].devices,
                        pn[1].id,
                    ),
                )
                if ranked:
                    self._routed[ranked[0][1].id] += 1
        if not ranked:
            shown = name if version is None else f"{name} version {version}"
            details = {}
            if rows:
                details["unavailable_nodes"] = sorted({node.id for _, node in rows})
                message = (f"no healthy Node hosts {shown} right now (the Nodes hosting it are "
                           "offline); retry later")
            else:
                message = f"no Node registered with this Network hosts {shown}"
            raise ApiError("model_not_found", message, 404, details=details or None)
        process, node = ranked[0]
        return {
            "node_id": node.id,
            "address": node.address,
            "model": process.name,
            "version": process.version,
            "status": process.status,
            "cycle": process.cycle,
        }

    def counts(self) -> dict[str, int]:
        now = utcnow()
        with self.db.session() as session:
            nodes = session.scalars(select(NodeRecord)).all()
            statuses = Counter(self.node_status(node, now) for node in nodes)
        return {"online": statuses["online"], "degraded": statuses["degraded"],
                "offline": statuses["offline"], "total": len(nodes)}


def _model_query(name: Any, version: Any) -> tuple[str, str | None]:
    if not isinstance(name, str) or not name:
        raise invalid_request("a model name is required (query parameter 'model')", field="model")
    if version in (None, ""):
        return name, None
    if not isinstance(version, str):
        version = str(version)
    return name, version
