"""The traces' generator.

`python -m pixelstream.tools.capacity.tracegen [DIR]` writes the named traces (by default into the simulator's
named-traces/, where a test checks the shipped files still match it), each from its own fixed seed.

`python -m pixelstream.tools.capacity.tracegen --shape diurnal|event --players N [--days D] [--seed S] FILE`
writes a trace of about N players of either shape (`shaped`), for traces of thousands of players:
- diurnal: D days of demand following the day, 8 times as many arrivals at the 20:00 peak as at the 08:00 low;
- event: a launch 2 hours into a day of steady demand: a quarter of the players within its first 10 minutes, the
  rest spread over the day (steady, and falling back from the launch over 3 hours).
Arrivals are Poisson processes with the rate each trace describes; sessions last 20 minutes on average
(exponential, 2-90 minutes)."""

from __future__ import annotations

import argparse
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


def diurnal(rng: random.Random, players: int, days: int = 1) -> list[Session]:
    """About `players` arrivals over `days` days, following the day (peak 20:00, low 08:00, 8 to 1)."""
    low_share = 1 / 8
    mean_rate = players / (days * 24 * HOUR)
    # cos over a day averages 0: the mean of low + (high - low) * (1 + cos) / 2 is (low + high) / 2.
    high = 2 * mean_rate / (1 + low_share)
    low = high * low_share

    def rate(t: float) -> float:
        return low + (high - low) * (1 + math.cos(2 * math.pi * (t - 20 * HOUR) / (24 * HOUR))) / 2

    return _sessions(rng, _arrivals(rng, rate, high, 0, days * 24 * HOUR), 1200, 120, 5400)


def event(rng: random.Random, players: int, days: int = 1) -> list[Session]:
    """About `players` arrivals over `days` days: a quarter within 10 minutes of a launch at 2 hours, a quarter
    falling back from the launch over 3 hours, the rest steady."""
    launch, span = 2 * HOUR, days * 24 * HOUR
    crowd = [launch + round(rng.uniform(0, 600)) for _ in range(players // 4)]
    steady = players / 2 / span
    # The fall-back's rate integrates to a quarter of the players: peak * 3 hours.
    fading = players / 4 / (3 * HOUR)

    def rate(t: float) -> float:
        return steady + (fading * math.exp(-(t - launch) / (3 * HOUR)) if t >= launch else 0)

    arrivals = sorted(crowd + _arrivals(rng, rate, steady + fading, 0, span))
    return _sessions(rng, arrivals, 1200, 120, 5400)


SHAPES: dict[str, Callable[..., list[Session]]] = {"diurnal": diurnal, "event": event}


def shaped(shape: str, players: int, days: int = 1, seed: int = 0) -> str:
    """The CSV text of a `shape` trace of about `players` players over `days` days."""
    if shape not in SHAPES:
        raise ValueError(f"--shape {shape}: one of {', '.join(SHAPES)}")
    if not 1 <= players <= 1_000_000 or not 1 <= days <= 30:
        raise ValueError(f"--players {players}, --days {days}: expected 1-1000000 players over 1-30 days")
    return _csv(SHAPES[shape](random.Random(f"{shape}:{seed}"), players, days))


def _csv(sessions: list[Session]) -> str:
    return "\n".join([",".join(HEADER), *(f"{s.arrival:g},{s.duration:g}" for s in sessions)]) + "\n"


GENERATORS: dict[str, Callable[[random.Random], list[Session]]] = {
    "steady-day": steady_day,
    "launch-burst": launch_burst,
    "flash-crowd": flash_crowd,
}


def generate(name: str) -> str:
    """The CSV text of named trace `name`, from its fixed seed."""
    return _csv(GENERATORS[name](random.Random(f"trace:{name}")))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelstream.tools.capacity.tracegen")
    parser.add_argument("target", nargs="?", type=Path, help="the named traces' directory, or the shaped trace's file")
    parser.add_argument("--shape", help=f"a trace of this shape: {', '.join(SHAPES)}")
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.shape:
        if options.target is None:
            parser.error("a shaped trace needs the FILE to write")
        try:
            text = shaped(options.shape, options.players, options.days, options.seed)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        options.target.write_text(text)
        print(f"wrote {options.target} ({text.count(chr(10)) - 1} players)")
        return 0
    directory = options.target or TRACES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for name in GENERATORS:
        (directory / f"{name}.csv").write_text(generate(name))
        print(f"wrote {directory / name}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
