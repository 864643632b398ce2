"""The session service's metrics in Prometheus' text format (version 0.0.4), scraped through its Service. The
gauges come once per build (label `build`)."""

from __future__ import annotations

from dataclasses import dataclass, field

PREFIX = "pixelstream_session"
# name -> (the broker's count it reports, help); the gauges come from the counts at scrape time.
GAUGES = {
    "queue": ("queued", "Players waiting for a stream."),
    "players": ("playing", "Players holding a stream (assigned, connected or reconnecting)."),
    "streams_ready": ("streams", "Streams that are ready (in use, free or retiring)."),
    "streams_in_use": ("inUse", "Ready streams a player holds."),
    "streams_free": ("free", "Ready streams a player may be given."),
    "streams_retiring": ("retiring", "Ready streams chosen for a scale-in."),
    "streams_wanted": ("wanted", "Streams the scaler wants: in use, one per waiting player, the buffer, in bounds."),
    "streams_max": ("max", "The build's maxReplicas: the most streams the scaler may want."),
    "scale_in_held": (
        "held",
        "1 while the build has more streams than it wants and they cannot go yet: its Deployment rolling out, the "
        "ReplicaSet behind the last scale-in, or no free stream to retire.",
    ),
}
COUNTERS = {
    "joined": "Joins, by whether they created a session (new) or returned the player's own (existing).",
    "refused": "Requests refused, by reason (auth, queue-full, stream-unavailable).",
    "dropped": "Player signalling messages dropped, by message type (invalid: not a signalling message).",
    "scale_errors": "Rounds in which a build's Deployment could not be read or scaled, by build.",
}
_LABELS = {"joined": "kind", "refused": "reason", "dropped": "type", "scale_errors": "build"}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")[:64]


@dataclass
class Metrics:
    counters: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, name: str, label: str, amount: int = 1) -> None:
        key = (name, label)
        self.counters[key] = self.counters.get(key, 0) + amount

    def render(self, builds: dict[str, dict[str, int]]) -> str:
        """`builds`: build -> its counts (a build the scaler does not know has no `wanted` and `max`)."""
        lines = []
        for name, (count, text) in GAUGES.items():
            lines += [f"# HELP {PREFIX}_{name} {text}", f"# TYPE {PREFIX}_{name} gauge"]
            for build, counts in sorted(builds.items()):
                if count in counts:
                    lines.append(f'{PREFIX}_{name}{{build="{_label(build)}"}} {counts[count]}')
        for name, text in COUNTERS.items():
            lines += [f"# HELP {PREFIX}_{name}_total {text}", f"# TYPE {PREFIX}_{name}_total counter"]
            for (counter, label), value in sorted(self.counters.items()):
                if counter == name:
                    lines.append(f'{PREFIX}_{name}_total{{{_LABELS[name]}="{_label(label)}"}} {value}')
        return "\n".join(lines) + "\n"
