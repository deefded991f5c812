"""Membership of a Fedgrid Network: join at start-up, then heartbeat until the Node stops.

A Node started with ``--network <url>`` (and ``--id``, ``ADDRESS``) joins that Network with the
registration secret shared by the operator (``--network-secret`` / ``NETWORK_SECRET``). The first
join answers a *node token*, which this module keeps (membership_tokens.py: in the data directory,
or for the replicas of a ``--cluster`` Node in their shared database) and sends with every
heartbeat and every later join: the Network refuses another process that tries to register or
heartbeat under this Node's id without it. A replica names itself (``replica``) in its join,
heartbeats and leave, so the Network counts the replicas of one Node apart and a replica that
stops takes out only itself.

The Network may start after the Node (docker-compose starts everything at once), so joining is
retried with exponential backoff and jitter, forever: a Node serves its devices whether or not the
Network is up. Each heartbeat carries the hosted processes (name, version, cycle, checkpoint,
open/waiting/finished), the devices training now and the load; the Network marks a Node offline
when heartbeats stop and online again at the next one. If the Network forgot this Node (its
database was reset) the heartbeat answers ``node_unknown`` and the Node joins again. On a clean
shutdown the Node says goodbye (``/leave``) so the Network stops routing devices to it at once.

Everything here runs in one greenlet; under gevent's monkey-patching the HTTP calls yield.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
import requests
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from . import __version__
from .cycles.statuses import AssignmentStatus, CycleStatus, ProcessStatus
from .db.database import Database
from .db.models import Assignment, Checkpoint, Cycle, Model, Process, utcnow
from .membership_tokens import FileTokens, SharedTokens

log = logging.getLogger("fedgrid.node.network")

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
REQUEST_TIMEOUT = 10.0
MIN_INTERVAL, MAX_INTERVAL = 0.2, 300.0


class MembershipRefused(Exception):
    """The Network answered, and said no (wrong secret, id taken): retrying soon will not help."""


@dataclass
class MembershipStatus:
    """What the dashboard shows about this Node's place in its Network."""

    network_url: str
    node_id: str
    address: str
    replica: str | None = None
    joined: bool = False
    last_heartbeat_at: datetime | None = None
    heartbeat_interval: float | None = None
    last_error: str | None = None
    failures: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def default_address(host: str, port: int) -> str:
    """This Node's URL when ADDRESS is not given: the bound host, or the machine's name."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://{host}:{port}"


def _directory_status(status: str, has_open_cycle: bool) -> str:
    """The Network's words for a process: a stopped one trains no more (finished), a paused one
    takes no device now (waiting), whatever its open cycle."""
    if status in (ProcessStatus.FINISHED, ProcessStatus.STOPPED):
        return "finished"
    if status == ProcessStatus.PAUSED or not has_open_cycle:
        return "waiting"
    return "open"


def collect_heartbeat(db: Database) -> dict[str, Any]:
    """The hosted processes with their cycle status, the devices training now and the load."""
    with db.session() as session:
        processes = session.scalars(select(Process).order_by(Process.id)).all()
        open_cycles = {
            cycle.process_id: cycle
            for cycle in session.scalars(select(Cycle).where(Cycle.status == CycleStatus.OPEN)).all()
        }
        last_sequence = dict(
            session.execute(
                select(Cycle.process_id, func.max(Cycle.sequence)).group_by(Cycle.process_id)
            ).all()
        )
        latest_checkpoint = dict(
            session.execute(
                select(Model.process_id, func.max(Checkpoint.number))
                .join(Checkpoint, Checkpoint.model_id == Model.id)
                .group_by(Model.process_id)
            ).all()
        )
        counts: dict[tuple[int, str], int] = {}
        if open_cycles:
            rows = session.execute(
                select(Assignment.cycle_id, Assignment.status, func.count())
                .where(Assignment.cycle_id.in_([c.id for c in open_cycles.values()]))
                .group_by(Assignment.cycle_id, Assignment.status)
            ).all()
            counts = {(cycle_id, status): n for cycle_id, status, n in rows}
    described = []
    training = 0
    for process in processes:
        cycle = open_cycles.get(process.id)
        entry: dict[str, Any] = {
            "name": process.name,
            "version": process.version,
            "status": _directory_status(process.status, cycle is not None),
            "cycle": cycle.sequence if cycle else last_sequence.get(process.id),
            "checkpoint": latest_checkpoint.get(process.id),
            "accepted": 0,
            "reported": 0,
            "deadline": None,
        }
        if cycle is not None:
            waiting = counts.get((cycle.id, AssignmentStatus.ACCEPTED), 0)
            reported = counts.get((cycle.id, AssignmentStatus.REPORTED), 0)
            entry.update(accepted=waiting + reported, reported=reported,
                         deadline=cycle.deadline.isoformat() + "Z")
            training += waiting
        described.append(entry)
    # Load: devices holding a place in an open cycle that have not reported yet (training now).
    return {"processes": described, "devices": training, "load": float(training), "health": "ok"}


class NetworkMembership:
    """Joins the Network and keeps this Node registered; see the module docstring."""

    def __init__(
        self,
        *,
        network_url: str,
        node_id: str,
        address: str,
        secret: str | None,
        db: Database,
        data_dir: Path,
        replica: str | None = None,
    ) -> None:
        self.network_url = network_url.rstrip("/")
        self.node_id = node_id
        self.address = address.rstrip("/")
        self.secret = secret
        self.db = db
        # A replica of a --cluster Node: its name, and the token in the shared database.
        self.replica = replica
        self.tokens = (SharedTokens(db, self.network_url, node_id) if replica is not None
                       else FileTokens(data_dir, self.network_url, node_id))
        self.status = MembershipStatus(network_url=self.network_url, node_id=node_id,
                                       address=self.address, replica=replica)
        self.interval = 10.0
        # The token of the last accepted join (heartbeats and the leave send it).
        self._token: str | None = None
        self._http = requests.Session()
        self._greenlet: gevent.Greenlet | None = None

    def _named(self, body: dict) -> dict:
        """`body` with this replica's name, when it is one."""
        if self.replica is not None:
            body["replica"] = self.replica
        return body

    # ----------------------------------------------------------------------------- life cycle

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self, *, leave: bool = True) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
            self._greenlet = None
        if leave and self.status.joined and self._token:
            try:
                self._post("/leave", self._named({"node_id": self.node_id}), bearer=self._token,
                           timeout=2)
                log.info("left the Network %s", self.network_url)
            except (requests.RequestException, MembershipRefused) as exc:
                log.warning("could not tell the Network %s that this Node stops: %s",
                            self.network_url, exc)
        self.status.joined = False
        self._http.close()

    def _run(self) -> None:
        while True:
            self._join_until_accepted()
            self._heartbeat_until_forgotten()

    # ----------------------------------------------------------------------------- calls

    def _post(self, path: str, body: dict, *, bearer: str | None, timeout: float = REQUEST_TIMEOUT):
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        response = self._http.post(self.network_url + path, json=body, headers=headers,
                                   timeout=timeout)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code >= 500:
            raise requests.HTTPError(f"the Network answered {response.status_code}")
        if response.status_code >= 400:
            error = answer.get("error", {}) if isinstance(answer, dict) else {}
            raise MembershipRefused(error.get("code") or str(response.status_code),
                                    error.get("message") or response.text[:200])
        return answer

    def join(self) -> dict:
        """One join attempt; raises on failure. Keeps the node token the Network hands out.

        The token is read afresh at every join: another replica may have joined (and stored a new
        token, e.g. after the Network forgot this Node) since this one last did."""
        body = self._named({"node_id": self.node_id, "address": self.address,
                            "version": __version__})
        with self.tokens.joining() as slot:
            if slot.stored:
                body["node_token"] = slot.stored
            answer = self._post("/join", body, bearer=self.secret)
            token = answer["node_token"]
            slot.keep(token)
        self._token = token
        self.interval = min(max(float(answer.get("heartbeat_interval", 10)), MIN_INTERVAL),
                            MAX_INTERVAL)
        self.status.joined = True
        self.status.heartbeat_interval = self.interval
        self.status.last_error = None
        self.status.failures = 0
        log.info("joined the Network %s as %r%s (address %s, heartbeat every %g s)",
                 self.network_url, self.node_id,
                 f" replica {self.replica!r}" if self.replica is not None else "",
                 self.address, self.interval)
        return answer

    def heartbeat(self) -> dict:
        try:
            body = collect_heartbeat(self.db)
        except Exception as exc:  # noqa: BLE001  the database being down is what we report
            log.warning("heartbeat without processes: the database is unreachable (%s)", exc)
            body = {"health": "degraded"}
        body["node_id"] = self.node_id
        answer = self._post("/heartbeat", self._named(body), bearer=self._token)
        self.status.last_heartbeat_at = utcnow()
        self.status.last_error = None
        self.status.failures = 0
        return answer

    def _join_until_accepted(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                self.join()
                return
            except MembershipRefused as exc:
                code, message = exc.args
                self._failed(f"join refused ({code}): {message}", error=True)
                # A refusal needs the operator (secret, id, admin removal): retry slowly.
                delay = MAX_RETRY_SECONDS
            except (requests.RequestException, KeyError, ValueError) as exc:
                self._failed(f"the Network {self.network_url} is not reachable yet: {exc}")
                delay = min(delay * 2, MAX_RETRY_SECONDS)
            except SQLAlchemyError as exc:
                # A replica reads and stores the token in its database: wait for it as well.
                self._failed(f"cannot keep the node token in the database: {exc}")
                delay = min(delay * 2, MAX_RETRY_SECONDS)
            gevent.sleep(delay * random.uniform(0.8, 1.2))

    def _heartbeat_until_forgotten(self) -> None:
        # The first heartbeat goes right after the join, so the Network knows what this Node
        # hosts (and can route to it) without waiting a whole interval.
        while True:
            try:
                self.heartbeat()
            except MembershipRefused as exc:
                code, message = exc.args
                self.status.joined = False
                # A replica's token stops working when a sibling replica joined afresh (the Network
                # forgot this Node) and stored the new one: the join below reads it.
                expected = code == "node_unknown" or (self.replica is not None
                                                      and code == "node_token_invalid")
                self._failed(f"heartbeat refused ({code}): {message}; joining again",
                             error=not expected)
                if code != "node_unknown":
                    gevent.sleep(self.interval)  # e.g. our id was re-registered: do not spin
                return
            except requests.RequestException as exc:
                self._failed(f"heartbeat to {self.network_url} failed: {exc}")
            gevent.sleep(self.interval)

    def _failed(self, message: str, *, error: bool = False) -> None:
        self.status.failures += 1
        self.status.last_error = message
        # The first failures say everything; afterwards one line a minute or so is enough.
        if self.status.failures <= 3 or self.status.failures % 20 == 0:
            (log.error if error else log.warning)("%s", message)


def start_membership(app) -> NetworkMembership | None:
    """Start joining the Network named in the Node's config (if any); kept in app.extensions."""
    state = app.extensions["fedgrid"]
    config = state.config
    if not config.network_url:
        app.extensions["fedgrid_membership"] = None
        return None
    secret = config.network_secret or os.environ.get("NETWORK_SECRET")
    if not secret:
        log.warning("--network is set but no --network-secret / NETWORK_SECRET: the Network "
                    "will refuse to register this Node")
    membership = NetworkMembership(
        network_url=config.network_url,
        node_id=config.node_id,
        address=config.address or default_address(config.host, config.port),
        secret=secret,
        db=state.db,
        data_dir=config.data_dir,
        replica=config.replica_id if config.cluster else None,
    )
    app.extensions["fedgrid_membership"] = membership
    membership.start()
    return membership


def stop_membership(app) -> None:
    membership = app.extensions.get("fedgrid_membership")
    if membership is not None:
        membership.stop()
