"""The command line of a document the repository generates (the configuration reference, the alert runbook):
write it, or `--check` that the committed file is what its source gives today."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def generate_or_check(
    prog: str, description: str, default_out: Path, render: Callable[[], str], source: str, argv: list[str] | None
) -> int:
    """`render()` written to --out (default `default_out`); with --check, 1 when the file differs from it."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs")
    parser.add_argument("--out", type=Path, default=default_out)
    options = parser.parse_args(argv)
    text = render()
    if options.check:
        if not options.out.exists() or options.out.read_text() != text:
            print(f"{options.out} differs from {source}: run {prog}")
            return 1
        print(f"{options.out} matches {source}")
        return 0
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(text)
    print(f"wrote {options.out} ({text.count(chr(10))} lines)")
    return 0
