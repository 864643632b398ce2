"""python -m pixelstream.tools.capacity: run a player trace through one stack, or several side by side.

Examples (make simulate runs the second):

    python -m pixelstream.tools.capacity --stack prod --trace steady-day --out build/simulate
    python -m pixelstream.tools.capacity --compare reference dev prod --trace launch-burst --out build/simulate
    python -m pixelstream.tools.capacity --stack-file my/Pulumi.x.yaml --trace my-trace.csv --set imagePullSeconds=40
    python -m pixelstream.tools.capacity --stack prod --trace steady-day --rollout-at 10800 --cycle-at 14400
    python -m pixelstream.tools.capacity --compare reference prod --trace launch-burst --seeds 10
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import pulumi

from .model import DEFAULT_STARTS_AT, Release, simulate
from .report import over_seeds, plot, release_summary, summarize, table
from .stack import load_stack, resolve
from .timings import Timings, node_hourly_usd
from .traces import load_trace, named_traces


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pixelstream.tools.capacity", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stack", default="dev", help="stack name (stacks/Pulumi.<name>.yaml, or reference)")
    which.add_argument("--stack-file", type=Path, help="simulate this stack file")
    which.add_argument("--compare", nargs="+", metavar="STACK", help="stack names or files, side by side")
    parser.add_argument("--trace", default="launch-burst", help=f"a CSV file or one of: {', '.join(named_traces())}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the timing jitter (default 0)")
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N", help="run seeds SEED..SEED+N-1: every figure's mean and spread"
    )
    parser.add_argument("--duration", type=int, help="seconds to simulate at least (default: the trace's end)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a timing")
    parser.add_argument("--price", action="append", default=[], metavar="SHAPE=USD", help="node price per hour")
    parser.add_argument("--rollout-at", type=int, metavar="SECONDS", help="a new build takes every new player then")
    parser.add_argument("--cycle-at", type=int, metavar="SECONDS", help="OKE starts cycling the GPU pool then")
    parser.add_argument(
        "--scheduling",
        choices=("spread", "pack"),
        default="spread",
        help="where new streams go: Kubernetes' default scoring spreads them; pack fills the fullest GPU node first "
        "(what a second scheduler scoring MostAllocated would do)",
    )
    parser.add_argument(
        "--starts-at",
        type=_moment,
        default=DEFAULT_STARTS_AT,
        metavar="ISO-8601",
        help="the wall-clock time of the trace's second 0, for the stack's capacity schedules (default "
        "2026-01-05T00:00:00+00:00, a Monday)",
    )
    parser.add_argument("--out", type=Path, help="write summary.json and timeline.png here")
    parser.add_argument("--project-dir", type=Path, default=Path("."), help="where stacks/ is (default .)")
    return parser


def _prices(assignments: list[str]) -> dict[str, float]:
    prices = {}
    for assignment in assignments:
        shape, _, value = assignment.partition("=")
        try:
            prices[shape] = float(value)
        except ValueError:
            raise ValueError(f"--price {assignment}: expected SHAPE=USD_PER_HOUR") from None
    return prices


def _moment(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # Python 3.10 reads no Z
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time such as 2026-06-12T18:00:00+02:00") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} names no time zone offset (add +00:00 or Z)")
    return moment.timestamp()


def _release(options: argparse.Namespace) -> Release | None:
    for flag, value in (("--rollout-at", options.rollout_at), ("--cycle-at", options.cycle_at)):
        if value is not None and value < 0:
            raise ValueError(f"{flag} {value}: expected seconds from the trace's start, 0 or more")
    if options.rollout_at is None and options.cycle_at is None:
        return None
    return Release(options.rollout_at, options.cycle_at)


def run(options: argparse.Namespace) -> str:
    """Simulate as the options say, write the outputs, return the table."""
    timings = Timings().overridden(options.set)
    prices = _prices(options.price)
    trace = load_trace(options.trace)
    if options.compare:
        files = [resolve(stack, options.project_dir) for stack in options.compare]
    else:
        files = [options.stack_file or resolve(options.stack, options.project_dir)]
    release = _release(options)
    run_end = trace.end_seconds if options.duration is None else options.duration
    for flag, at in (("--rollout-at", options.rollout_at), ("--cycle-at", options.cycle_at)):
        if at is not None and at >= run_end:
            raise ValueError(f"{flag} {at}: the run ends at {run_end} s (the trace's end, or --duration)")
    if not 1 <= options.seeds <= 100:
        raise ValueError(f"--seeds {options.seeds}: expected 1-100 runs")
    summaries, runs = [], []
    for file in files:
        stack = load_stack(file)
        hourly = node_hourly_usd(stack.pool.shape, prices)
        per_seed = []
        for seed in range(options.seed, options.seed + options.seeds):
            outcome = simulate(
                stack, trace, timings, seed, options.duration, release, options.starts_at, options.scheduling
            )
            per_seed.append(summarize(stack, trace.name, outcome, timings, seed, hourly))
            if release:
                baseline = simulate(
                    stack, trace, timings, seed, options.duration, None, options.starts_at, options.scheduling
                )
                per_seed[-1]["release"] = release_summary(stack, baseline, outcome, release)
            if seed == options.seed:
                runs.append((stack.name, outcome))  # the timeline shows the first seed's run
        summaries.append(per_seed[0] if options.seeds == 1 else over_seeds(per_seed))
    names = [s["stack"] for s in summaries]
    if len(set(names)) != len(names):
        raise ValueError(f"stacks to compare need distinct names, got {', '.join(names)}")
    if options.out:
        options.out.mkdir(parents=True, exist_ok=True)
        document = summaries[0] if not options.compare else {s["stack"]: s for s in summaries}
        (options.out / "summary.json").write_text(json.dumps(document, indent=2) + "\n")
        plot(runs, options.out / "timeline.png", release)
    return table(summaries)


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        report = run(options)
    except (pulumi.RunError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report, end="")
    if options.out:
        print(f"wrote {options.out}/summary.json and {options.out}/timeline.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
