"""The session service's metrics in Prometheus' text format (version 0.0.4), scraped through its Service so that
every series carries the `service` label the stream autoscalers' custom metric is looked up by. The gauges come
once per build (label `build`): each build's autoscaler reads its own demand ratio."""

from __future__ import annotations

from dataclasses import dataclass, field

PREFIX = "pixelstream_session"
# name -> (type, help); the gauges come from the broker's counts at scrape time.
GAUGES = {
    "queue": "Players waiting for a stream.",
    "players": "Players holding a stream (assigned, connected or reconnecting).",
    "streams_ready": "Streams that are ready (busy or free).",
    "streams_free": "Ready streams without a player.",
    "demand_ratio": "Players (holding or waiting) per ready stream: what the build's stream autoscaler scales on.",
}
COUNTERS = {
    "joined": "Joins, by whether they created a session (new) or returned the player's own (existing).",
    "refused": "Requests refused, by reason (auth, queue-full, stream-unavailable).",
    "dropped": "Player signalling messages dropped, by message type (invalid: not a signalling message).",
}
_COUNT_KEYS = {"queue": "queued", "players": "playing", "streams_ready": "streams", "streams_free": "free"}
_LABELS = {"joined": "kind", "refused": "reason", "dropped": "type"}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")[:64]


@dataclass
class Metrics:
    counters: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, name: str, label: str, amount: int = 1) -> None:
        key = (name, label)
        self.counters[key] = self.counters.get(key, 0) + amount

    def render(self, builds: dict[str, tuple[dict[str, int], float]]) -> str:
        """`builds`: build -> (its counts, its demand ratio)."""
        lines = []
        for name, text in GAUGES.items():
            lines += [f"# HELP {PREFIX}_{name} {text}", f"# TYPE {PREFIX}_{name} gauge"]
            for build, (counts, ratio) in sorted(builds.items()):
                value = ratio if name == "demand_ratio" else counts[_COUNT_KEYS[name]]
                lines.append(f'{PREFIX}_{name}{{build="{_label(build)}"}} {value:g}')
        for name, text in COUNTERS.items():
            lines += [f"# HELP {PREFIX}_{name}_total {text}", f"# TYPE {PREFIX}_{name}_total counter"]
            for (counter, label), value in sorted(self.counters.items()):
                if counter == name:
                    lines.append(f'{PREFIX}_{name}_total{{{_LABELS[name]}="{_label(label)}"}} {value}')
        return "\n".join(lines) + "\n"
