"""`make demo` (scripts/demo.py) runs end to end, quietly, and leaves nothing running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_demo_trains_and_stops_the_node_cleanly():
    finished = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    out = finished.stdout
    cycle_lines = [line for line in out.splitlines() if line.strip().startswith("cycle ")]
    assert len(cycle_lines) == 5 and all("reports 4" in line for line in cycle_lines)
    assert "checkpoints on the Node: [1, 2, 3, 4, 5, 6]" in out
    assert "Node stopped (exit status 0)" in out
    assert finished.stderr.strip() == ""
