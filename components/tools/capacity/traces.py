"""Player traces: one row per session, `arrival_seconds,duration_seconds`, and the named traces shipped with
the simulator (made by tracegen.py)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

HEADER = ("arrival_seconds", "duration_seconds")
TRACES_DIR = Path(__file__).parent / "named-traces"


@dataclass(frozen=True)
class Session:
    arrival: float
    duration: float


@dataclass(frozen=True)
class Trace:
    name: str
    sessions: tuple[Session, ...]

    @property
    def end_seconds(self) -> int:
        """When the last session would end if nobody waited."""
        return math.ceil(max((s.arrival + s.duration for s in self.sessions), default=0))


def read_trace(path: Path) -> Trace:
    """A trace CSV; errors name the file, the line and what is wrong."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(cell.strip() for cell in rows[0]) != HEADER:
        raise ValueError(f"{path}: the first line must be the header {','.join(HEADER)}")
    sessions = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            arrival, duration = (float(cell) for cell in row)
        except ValueError:
            raise ValueError(f"{path}:{line}: {','.join(row)} is not two numbers") from None
        if arrival < 0 or duration <= 0 or not all(map(math.isfinite, (arrival, duration))):
            raise ValueError(f"{path}:{line}: need arrival >= 0 and duration > 0, got {','.join(row)}")
        sessions.append(Session(arrival, duration))
    return Trace(path.stem, tuple(sorted(sessions, key=lambda s: s.arrival)))


def named_traces() -> list[str]:
    return sorted(p.stem for p in TRACES_DIR.glob("*.csv"))


def load_trace(name_or_path: str) -> Trace:
    """A named trace (`steady-day`, `launch-burst`, `flash-crowd`) or a CSV file."""
    path = Path(name_or_path)
    if path.suffix == ".csv" or path.exists():
        return read_trace(path)
    if name_or_path in named_traces():
        return read_trace(TRACES_DIR / f"{name_or_path}.csv")
    raise FileNotFoundError(f"no trace {name_or_path!r}: not a CSV file nor one of {', '.join(named_traces())}")
