"""Real programs the tests drive: required in CI, skipped with an install hint elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest


def require(program: str, package: str) -> str:
    """The path of `program` (from Debian's `package`): a failure in CI when missing, a skip elsewhere."""
    path = shutil.which(program)
    if path:
        return path
    hint = f"install Debian's {package} package (apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{program} is missing in CI: {hint}")
    pytest.skip(f"{program} not found: {hint}")


def one_line_error(stderr: str, problem: str) -> bool:
    """A command-line tool's refusal: one `error: ...` line that says `problem`."""
    return stderr.startswith("error: ") and problem in stderr and stderr.count("\n") == 1
