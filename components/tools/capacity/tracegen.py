"""The named traces' generator: `python -m pixelstream.tools.capacity.tracegen [DIR]` writes them (by default into
the simulator's named-traces/, where a test checks the shipped files still match it). Each comes from its own fixed
seed; arrivals are Poisson processes with the rate each trace describes."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from pathlib import Path

from .traces import HEADER, TRACES_DIR, Session

HOUR = 3600


def _arrivals(rng: random.Random, rate: Callable[[float], float], peak: float, start: float, end: float) -> list[int]:
    """Arrival times of a Poisson process with time-varying `rate` (per second, at most `peak`), by thinning."""
    times, t = [], start
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return times
        if rng.random() * peak < rate(t):
            times.append(round(t))


def _sessions(rng: random.Random, arrivals: list[int], mean: float, low: int, high: int) -> list[Session]:
    """Exponentially distributed session lengths, clipped to [low, high] seconds."""
    return [Session(a, min(max(round(rng.expovariate(1 / mean)), low), high)) for a in arrivals]


def steady_day(rng: random.Random) -> list[Session]:
    """24 hours, demand following the day: on average 1 player at 08:00 and 6 at the 20:00 peak; 20-minute sessions."""
    low, high = 1 / 1200, 6 / 1200

    def rate(t: float) -> float:
        return low + (high - low) * (1 + math.cos(2 * math.pi * (t - 20 * HOUR) / (24 * HOUR))) / 2

    return _sessions(rng, _arrivals(rng, rate, high, 0, 24 * HOUR), 1200, 120, 5400)


def launch_burst(rng: random.Random) -> list[Session]:
    """Two hours around a launch at 10 minutes: 6 players within its first minute, then arrivals at 20 per hour
    falling back to 4 per hour over the next hour; 15-minute sessions."""
    before, after = 4 / HOUR, 20 / HOUR

    def rate(t: float) -> float:
        return before if t < 600 else before + (after - before) * math.exp(-(t - 600) / 1800)

    first = sorted(600 + round(rng.uniform(0, 60)) for _ in range(6))
    arrivals = sorted(first + _arrivals(rng, rate, after, 0, 2 * HOUR))
    return _sessions(rng, arrivals, 900, 120, 3600)


def flash_crowd(rng: random.Random) -> list[Session]:
    """90 minutes with a flash crowd at 30 minutes: 40 players within two minutes, far beyond any pool here,
    on top of 6 per hour; 8-minute sessions."""
    crowd = sorted(1800 + round(rng.uniform(0, 120)) for _ in range(40))
    arrivals = sorted(crowd + _arrivals(rng, lambda t: 6 / HOUR, 6 / HOUR, 0, 1.5 * HOUR))
    return _sessions(rng, arrivals, 480, 60, 1800)


GENERATORS: dict[str, Callable[[random.Random], list[Session]]] = {
    "steady-day": steady_day,
    "launch-burst": launch_burst,
    "flash-crowd": flash_crowd,
}


def generate(name: str) -> str:
    """The CSV text of named trace `name`, from its fixed seed."""
    rows = [",".join(HEADER)]
    rows += [f"{s.arrival:g},{s.duration:g}" for s in GENERATORS[name](random.Random(f"trace:{name}"))]
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else TRACES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for name in GENERATORS:
        (directory / f"{name}.csv").write_text(generate(name))
        print(f"wrote {directory / name}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
