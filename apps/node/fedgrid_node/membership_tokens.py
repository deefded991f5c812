"""Where a Node keeps the node token its Network answered: the data directory for a Node run as
one process, the shared database for the replicas of a `--cluster` Node.

Replicas have no shared data directory (containers scaled with `--scale` each get their own), and
the Network refuses a join of a known id without its token (`node_id_taken`). So the replicas keep
the token in the database they share, and join one at a time: each holds an advisory lock from
reading the token, through the join, to storing what the Network answered, so replicas starting
at once end with one token (the first one's), and the others join again with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from .db.database import Database
from .db.models import NetworkMembershipToken, utcnow

TOKEN_FILE = "network-membership.json"
# The PostgreSQL advisory lock key held by a replica while it joins (any constant of our own,
# other than the schema upgrade's in fedgrid_server.migrations).
JOIN_LOCK = 0x66656467726A6E  # "fedgrjn"


@dataclass
class TokenSlot:
    """The token stored when the join began; `keep` records the one the Network answered."""

    stored: str | None
    answered: str | None = None

    def keep(self, token: str) -> None:
        self.answered = token


class FileTokens:
    """A single-process Node's token: `<data dir>/network-membership.json`, mode 0600."""

    def __init__(self, data_dir: Path, network_url: str, node_id: str) -> None:
        self.path = Path(data_dir) / TOKEN_FILE
        self.network_url = network_url
        self.node_id = node_id

    def _load(self) -> str | None:
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if saved.get("network") == self.network_url and saved.get("node_id") == self.node_id:
            return saved.get("node_token")
        return None

    def _save(self, token: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.touch(mode=0o600)
        os.chmod(temporary, 0o600)
        temporary.write_text(json.dumps(
            {"network": self.network_url, "node_id": self.node_id, "node_token": token}
        ))
        os.replace(temporary, self.path)

    @contextmanager
    def joining(self) -> Iterator[TokenSlot]:
        slot = TokenSlot(self._load())
        yield slot
        if slot.answered is not None and slot.answered != slot.stored:
            self._save(slot.answered)


class SharedTokens:
    """A `--cluster` Node's token: a row of its shared database; joins serialised by a lock."""

    def __init__(self, db: Database, network_url: str, node_id: str) -> None:
        self.db = db
        self.key = (network_url, node_id)

    @contextmanager
    def joining(self) -> Iterator[TokenSlot]:
        with self.db.session() as session:
            if not self.db.is_sqlite:
                # Released when this transaction ends, after the answered token is stored (or
                # when the join failed and nothing is).
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": JOIN_LOCK})
            row = session.get(NetworkMembershipToken, self.key)
            slot = TokenSlot(row.node_token if row else None)
            yield slot
            if slot.answered is None or slot.answered == slot.stored:
                return
            if row is None:
                network_url, node_id = self.key
                session.add(NetworkMembershipToken(network_url=network_url, node_id=node_id,
                                                   node_token=slot.answered, updated_at=utcnow()))
            else:
                row.node_token = slot.answered
                row.updated_at = utcnow()
