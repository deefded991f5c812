"""The durable side of a secure cycle's rounds (secagg_cycle.py): the rounds' state and every
message the Node acknowledged, in `secure_rounds` and `secure_messages`.

A message is written (committed) before its device is told it arrived, so whatever a device was
told is there after a crash; the rounds are rebuilt by replaying the messages, in round order,
into a fresh aggregator that draws its neighbour graph from the stored seed. The rows go with the
cycle's close, in its own transaction (`delete_secure_rounds`), as the report diffs do.

Messages are stored in one canonical form per round, so that a device sending an acknowledged
message again can be told apart from one sending a different one (secagg_cycle.py compares their
digests): the two public keys end to end; share boxes and unmask shares as entries of
(index: 8 bytes signed big-endian, length: 4 bytes, bytes) by increasing index; a masked input as
its own bytes. The entries and the keys are the devices' wire forms (fedgrid_protocol.secagg.wire),
so a message sent in binary is stored as it came.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from fedgrid_protocol.secagg import SecAggAggregator, wire

from ..db.database import Database
from ..db.models import SecureMessage, SecureRound


def encode_message(round_number: int, payload) -> bytes:
    """A round's message in its canonical form; ValueError for what cannot be one."""
    if round_number == SecAggAggregator.ADVERTISE:
        return wire.encode_keys(*payload)
    if round_number == SecAggAggregator.MASKED_INPUT:
        return bytes(payload)
    return wire.encode_entries(payload)


def decode_message(round_number: int, data: bytes):
    """The inverse of `encode_message` (for messages it wrote: checked when they arrived)."""
    if round_number == SecAggAggregator.ADVERTISE:
        half = len(data) // 2
        return data[:half], data[half:]
    if round_number == SecAggAggregator.MASKED_INPUT:
        return data
    return wire.decode_entries(data)


@dataclass
class StoredRounds:
    cohort: list[int]
    graph_seed: int
    round: int
    round_closes: datetime
    failure: str | None


class SecureRoundStore:
    def __init__(self, db: Database, cycle_id: int) -> None:
        self.db = db
        self.cycle_id = cycle_id

    def begin(self, cohort: list[int], graph_seed: int, round_closes: datetime) -> None:
        """A fixed cohort's rounds start: they replace an aborted cohort's, messages and all."""
        with self.db.session() as session:
            session.execute(delete(SecureMessage).where(SecureMessage.cycle_id == self.cycle_id))
            session.execute(delete(SecureRound).where(SecureRound.cycle_id == self.cycle_id))
            session.add(SecureRound(cycle_id=self.cycle_id, cohort=list(cohort),
                                    graph_seed=graph_seed, round=SecAggAggregator.ADVERTISE,
                                    round_closes=round_closes))
            session.commit()

    def add_message(self, round_number: int, device: int, data: bytes) -> None:
        with self.db.session() as session:
            session.add(SecureMessage(cycle_id=self.cycle_id, round=round_number, device=device,
                                      data=data))
            session.commit()

    def round_opened(self, round_number: int, round_closes: datetime) -> None:
        self._update(round=round_number, round_closes=round_closes)

    def failed(self, message: str) -> None:
        self._update(failure=message)

    def _update(self, **values) -> None:
        with self.db.session() as session:
            row = session.get(SecureRound, self.cycle_id)
            if row is None:
                return  # the cycle closed meanwhile, and its rounds with it
            for key, value in values.items():
                setattr(row, key, value)
            session.commit()

    def load(self) -> StoredRounds | None:
        with self.db.session() as session:
            row = session.get(SecureRound, self.cycle_id)
            if row is None:
                return None
            return StoredRounds(cohort=[int(a) for a in row.cohort], graph_seed=row.graph_seed,
                                round=row.round, round_closes=row.round_closes,
                                failure=row.failure)

    def messages(self) -> Iterator[tuple[int, int, bytes]]:
        """(round, device, data) in round order, then device order; each message's bytes read by
        its own query, so a replay holds one masked input at a time."""
        with self.db.session() as session:
            keys = session.execute(
                select(SecureMessage.round, SecureMessage.device)
                .where(SecureMessage.cycle_id == self.cycle_id)
                .order_by(SecureMessage.round, SecureMessage.device)
            ).all()
            for round_number, device in keys:
                data = session.scalar(select(SecureMessage.data).where(
                    SecureMessage.cycle_id == self.cycle_id, SecureMessage.round == round_number,
                    SecureMessage.device == device))
                yield round_number, device, bytes(data)


def delete_secure_rounds(session, cycle_id: int) -> None:
    """In the close's transaction: the rounds are over once the cycle is (summed or not)."""
    session.execute(delete(SecureMessage).where(SecureMessage.cycle_id == cycle_id))
    session.execute(delete(SecureRound).where(SecureRound.cycle_id == cycle_id))


__all__ = ["SecureRoundStore", "StoredRounds", "decode_message", "delete_secure_rounds",
           "encode_message"]
