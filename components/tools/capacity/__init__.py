"""The capacity simulator: a player trace run through a stack's autoscaling, in simulated time.

    python -m pixelstream.tools.capacity --compare reference dev prod --trace launch-burst --out build/simulate

`load_stack` reads a stack file, `load_trace` a trace, `simulate` runs one through the other, `summarize`,
`table` and `plot` report. See docs/capacity.md for the model and its defaults.
"""

from .hpa import Hpa, Policy, Rules
from .model import Outcome, simulate
from .report import plot, summarize, table
from .stack import SimulatedStack, load_stack, resolve
from .timings import SOURCES, Timings, node_hourly_usd
from .traces import Session, Trace, load_trace

__all__ = [
    "SOURCES",
    "Hpa",
    "Outcome",
    "Policy",
    "Rules",
    "Session",
    "SimulatedStack",
    "Timings",
    "Trace",
    "load_stack",
    "load_trace",
    "node_hourly_usd",
    "plot",
    "resolve",
    "simulate",
    "summarize",
    "table",
]
