"""What a run says: summary.json (numbers a script reads), a table (what a person reads; byte-stable for a given
input) and timeline.png."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .model import Outcome, Player, Release
from .stack import SimulatedStack
from .timings import Timings

SUMMARY_KEYS = (
    "players",
    "servedPlayers",
    "unservedPlayers",
    "interruptedSessions",
    "p50WaitSeconds",
    "p95WaitSeconds",
    "maxWaitSeconds",
    "gpuHours",
    "idleGpuHours",
    "cost",
    "maxStreams",
    "maxNodes",
    "failedLaunches",
    "backedOffMinutes",
    "toldWaitErrorP50Seconds",
    "toldWaitErrorP95Seconds",
)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def wait(player: Player) -> float:
    """Seconds in the queue: until matched, or until leaving for a player who gave up."""
    end = player.matched if player.matched is not None else player.gave_up
    return (end if end is not None else player.arrival) - player.arrival


def summarize(
    stack: SimulatedStack, trace_name: str, outcome: Outcome, timings: Timings, seed: int, hourly_usd: float
) -> dict[str, Any]:
    """The run's summary; wait percentiles cover every player, a player who gave up counting the time waited."""
    players = outcome.players
    waits = [wait(p) for p in players]
    served = sum(p.matched is not None for p in players)
    gpu_hours = outcome.gpu_seconds / 3600
    # How far the wait a queued player was told is from what it then waited (served players only).
    told_errors = [abs(p.told - wait(p)) for p in players if p.told is not None and p.matched is not None]
    numbers = {
        "players": len(players),
        "servedPlayers": served,
        "unservedPlayers": len(players) - served,
        "interruptedSessions": sum(p.interrupted for p in players),
        "p50WaitSeconds": round(percentile(waits, 0.50), 1),
        "p95WaitSeconds": round(percentile(waits, 0.95), 1),
        "maxWaitSeconds": round(max(waits, default=0.0), 1),
        "gpuHours": round(gpu_hours, 2),
        "idleGpuHours": round(gpu_hours - outcome.busy_gpu_seconds / 3600, 2),
        "cost": round(outcome.node_seconds / 3600 * hourly_usd, 2),
        "maxStreams": outcome.max_streams,
        "maxNodes": outcome.max_nodes,
        "toldWaitErrorP50Seconds": round(percentile(told_errors, 0.50), 1),
        "toldWaitErrorP95Seconds": round(percentile(told_errors, 0.95), 1),
        "failedLaunches": outcome.failed_launches,
        "backedOffMinutes": round(outcome.backoff_seconds / 60, 1),
    }
    pool = stack.pool
    return {
        "stack": stack.name,
        "trace": trace_name,
        "seed": seed,
        **numbers,
        "horizonSeconds": outcome.horizon,
        "gpuShape": pool.shape,
        "streamsPerNode": pool.slots,
        "gpuNodes": {"min": pool.min_size, "max": pool.max_size, "autoscaled": pool.autoscaled},
        "warmStreams": stack.warm_streams,
        "prePull": stack.pre_pull,
        "nodeHourlyUsd": hourly_usd,
        "timings": timings.as_dict(),
    }


def release_summary(stack: SimulatedStack, baseline: Outcome, outcome: Outcome, release: Release) -> dict[str, Any]:
    """What a release cost against the same run without it: sessions cut (and those cut before their drain ran
    out: the goal is none), the extra GPU-hours, and how long the old build and the pool's cycling lasted."""
    cut = [p for p in outcome.players if p.interrupted]
    early = [p for p in cut if p.warned is None or p.cut - p.warned < stack.drain_seconds]

    def since(start: int | None, end: float | None) -> int | None:
        return None if start is None or end is None else round(end - start)

    return {
        "rolloutAtSeconds": release.rollout_at,
        "cycleAtSeconds": release.cycle_at,
        "sessionsCut": len(cut),
        "sessionsCutBeforeTheirDrain": len(early),
        "extraGpuHours": round((outcome.gpu_seconds - baseline.gpu_seconds) / 3600, 2),
        "oldBuildSeconds": since(release.rollout_at, outcome.old_build_removed),
        "cycleSeconds": since(release.cycle_at, outcome.cycle_ended),
    }


def over_seeds(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One stack's runs of one trace with several seeds: the first run's description, every figure (and the
    release's) as its mean over the seeds, and the spread of each (`spread`: the least and the most), with the
    seeds and every run's own summary."""
    first = runs[0]

    def figures(summary: dict[str, Any]) -> dict[str, float]:
        numbers = {key: summary[key] for key in (*SUMMARY_KEYS, "horizonSeconds")}
        release = summary.get("release", {})
        numbers |= {f"release.{k}": v for k, v in release.items() if isinstance(v, int | float)}
        return numbers

    table_ = [figures(run) for run in runs]
    keys = [key for key in table_[0] if all(key in row for row in table_)]
    least = {key: min(row[key] for row in table_) for key in keys}
    most = {key: max(row[key] for row in table_) for key in keys}
    # A figure every seed agrees on stays as it is (a count stays whole).
    mean = {
        key: least[key] if least[key] == most[key] else round(statistics.fmean(row[key] for row in table_), 2)
        for key in keys
    }

    def unflatten(numbers: dict[str, float]) -> dict[str, Any]:
        plain = {k: v for k, v in numbers.items() if not k.startswith("release.")}
        release = {k.removeprefix("release."): v for k, v in numbers.items() if k.startswith("release.")}
        return plain | ({"release": {**first.get("release", {}), **release}} if "release" in first else {})

    return {
        **first,
        **unflatten(mean),
        "seeds": [run["seed"] for run in runs],
        "spread": {"min": unflatten(least), "max": unflatten(most)},
        "runs": list(runs),
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m"


ROWS: tuple[tuple[str, Any], ...] = (
    ("GPU shape", lambda s: s["gpuShape"]),
    ("streams per node", lambda s: str(s["streamsPerNode"])),
    ("GPU nodes min-max", lambda s: f"{s['gpuNodes']['min']}-{s['gpuNodes']['max']}"),
    ("warm streams", lambda s: str(s["warmStreams"])),
    ("image pre-pull", lambda s: "yes" if s["prePull"] else "no"),
    ("players served", lambda s: f"{s['servedPlayers']}/{s['players']}"),
    ("players unserved", lambda s: str(s["unservedPlayers"])),
    ("sessions cut", lambda s: str(s["interruptedSessions"])),
    ("wait p50 (s)", lambda s: f"{s['p50WaitSeconds']:.0f}"),
    ("wait p95 (s)", lambda s: f"{s['p95WaitSeconds']:.0f}"),
    ("wait max (s)", lambda s: f"{s['maxWaitSeconds']:.0f}"),
    ("GPU hours", lambda s: f"{s['gpuHours']:.1f}"),
    ("idle GPU hours", lambda s: f"{s['idleGpuHours']:.1f}"),
    ("cost (USD)", lambda s: f"{s['cost']:.2f}"),
    ("max ready streams", lambda s: str(s["maxStreams"])),
    ("max GPU nodes", lambda s: str(s["maxNodes"])),
    ("ETA error p50 (s)", lambda s: f"{s['toldWaitErrorP50Seconds']:.0f}"),
    ("ETA error p95 (s)", lambda s: f"{s['toldWaitErrorP95Seconds']:.0f}"),
    ("launches failed", lambda s: f"{s['failedLaunches']:g}"),
    ("backed off (min)", lambda s: f"{s['backedOffMinutes']:.0f}"),
)


RELEASE_ROWS: tuple[tuple[str, Any], ...] = (
    ("release: cut", lambda r: str(r["sessionsCut"])),
    ("  before drain", lambda r: str(r["sessionsCutBeforeTheirDrain"])),
    ("  extra GPU hours", lambda r: f"{r['extraGpuHours']:.2f}"),
    ("  old build (min)", lambda r: "-" if r["oldBuildSeconds"] is None else f"{r['oldBuildSeconds'] / 60:.0f}"),
    ("  pool cycled (min)", lambda r: "-" if r["cycleSeconds"] is None else f"{r['cycleSeconds'] / 60:.0f}"),
)


def _spread_cell(cell: Callable[[dict[str, Any]], str], summary: dict[str, Any], part: str | None = None) -> str:
    """A figure as the row formats it; over several seeds, the mean and, when they differ, the least and the most."""

    def pick(s: dict[str, Any]) -> dict[str, Any]:
        return s[part] if part else s

    text = cell(pick(summary))
    if "spread" in summary:
        low, high = (cell(pick({**summary, **summary["spread"][end]})) for end in ("min", "max"))
        if low != high:
            text = f"{text} ({low}-{high})"
    return text


def table(summaries: Sequence[dict[str, Any]]) -> str:
    """The summaries side by side, then a line for every stack that left players unserved. Summaries over several
    seeds (`over_seeds`) show each figure's mean and its spread."""
    first = summaries[0]
    seeds = first.get("seeds", [first["seed"]])
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}, mean (least-most)"
    lines = [
        f"trace {first['trace']}: {first['players']} players, {which}, "
        f"simulated {_duration(round(max(s['horizonSeconds'] for s in summaries)))}"
    ]
    rows = [(label, [_spread_cell(cell, s) for s in summaries]) for label, cell in ROWS]
    if "release" in first:
        rows += [(label, [_spread_cell(cell, s, "release") for s in summaries]) for label, cell in RELEASE_ROWS]
    width = max(12, *(len(s["stack"]) for s in summaries), *(len(text) for _, texts in rows for text in texts))
    lines.append(f"{'':<20}" + "".join(f"{s['stack']:>{width + 2}}" for s in summaries))
    for label, texts in rows:
        lines.append(f"{label:<20}" + "".join(f"{text:>{width + 2}}" for text in texts))
    for s in summaries:
        if s["unservedPlayers"]:
            average = "on average " if len(seeds) > 1 else ""
            lines.append(
                f"{s['stack']}: {average}{s['unservedPlayers']:g} of {s['players']} players left the queue "
                f"unserved (patience: median {s['timings']['playerPatienceSeconds']:g} s); capacity peaked at "
                f"{_count(s['maxStreams'], 'ready stream')} on {s['maxNodes']} of at most "
                f"{_count(s['gpuNodes']['max'], 'GPU node')}"
            )
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[tuple[str, Outcome]], path: Path, release: Release | None = None) -> None:
    """One panel per run: players waiting and playing, ready streams and GPU nodes over time, and when a
    release rolled a build out and began cycling the GPU pool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = max(outcome.horizon for _, outcome in runs)
    scale, unit = (3600, "hours") if horizon > 3 * 3600 else (60, "minutes")
    figure, axes = plt.subplots(len(runs), 1, figsize=(10, 2.6 * len(runs) + 0.6), sharex=True, squeeze=False)
    for ax, (name, outcome) in zip(axes[:, 0], runs, strict=True):
        times = [sample.time / scale for sample in outcome.samples]
        for field, label, color in (
            ("waiting", "players waiting", "tab:red"),
            ("playing", "players playing", "tab:blue"),
            ("ready_streams", "ready streams", "tab:green"),
            ("nodes", "GPU nodes", "tab:gray"),
        ):
            values = [getattr(sample, field) for sample in outcome.samples]
            ax.step(times, values, where="post", label=label, color=color, linewidth=1.2)
        for at, label in ((release.rollout_at, "new build"), (release.cycle_at, "pool cycling")) if release else ():
            if at is not None:
                ax.axvline(at / scale, color="black", linestyle="--", linewidth=0.8)
                ax.annotate(
                    label,
                    (at / scale, 0.98),
                    xycoords=("data", "axes fraction"),
                    xytext=(-3, 0),
                    textcoords="offset points",
                    rotation=90,
                    ha="right",
                    va="top",
                    fontsize=7,
                )
        ax.set_title(name, loc="left", fontsize=10)
        ax.set_ylabel("count")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncols=4)
    axes[-1, 0].set_xlabel(f"time ({unit})")
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)
