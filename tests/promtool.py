"""Running Debian's `promtool` from tests: required in CI, skipped with an install hint elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from tools import require


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require("promtool", "prometheus"), *args], capture_output=True, text=True, timeout=60)


def expr_tests(
    directory: Path, input_series: dict[str, str], cases: list[tuple[str, list[tuple[str, float]]]]
) -> subprocess.CompletedProcess:
    """`promtool test rules` with `input_series` (series -> values) and, per case, a PromQL expression and
    the exact samples (labels, value) it must return two minutes in."""
    document: dict[str, Any] = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in input_series.items()],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "2m",
                        "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
                    }
                    for expr, samples in cases
                ],
            }
        ],
    }
    path = directory / "adapter-test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return run("test", "rules", str(path))
