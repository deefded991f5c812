"""A simulation shown to a person: the table of cycles and the summary on stdout, what it is
doing meanwhile on stderr.

Stages (compiling, hosting, registering devices) are whole lines, so a log or a pipe stays line
based. Devices reporting within a cycle are shown only on a terminal, as one status line that is
rewritten in place and cleared before the cycle's row is printed.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .simulate import CycleRecord, Progress, SimulationResult

_CLEAR_LINE = "\r\033[K"


class SimulationConsole:
    """``on_progress``/``on_cycle`` for :func:`fedgrid.simulate.simulate`, then ``summary``."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = self.err.isatty() if live is None else live
        self._status_shown = False

    def progress(self, progress: Progress) -> None:
        if progress.stage == "cycle":
            if self.live:
                self.err.write(_CLEAR_LINE + progress.message)
                self.err.flush()
                self._status_shown = True
            return
        self._clear_status()
        # The "ready" line heads the table: it says what the rows are about.
        print(progress.message, file=self.out if progress.stage == "ready" else self.err,
              flush=True)

    def cycle(self, record: CycleRecord) -> None:
        self._clear_status()
        print(record.line(), file=self.out, flush=True)

    def summary(self, result: SimulationResult) -> None:
        self._clear_status()
        print(result.summary(), file=self.out, flush=True)

    def _clear_status(self) -> None:
        if self._status_shown:
            self.err.write(_CLEAR_LINE)
            self.err.flush()
            self._status_shown = False
