"""The shell blocks the documents (the README and the site's pages) mark `<!-- runnable -->` run as written,
each line in a copy of the working tree with the project's virtual environment first on PATH; a line's failure
fails the test. `make test` and `make check` are what CI runs itself (.ci/run), so here they are checked to be
there rather than run again."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, documentation

pytestmark = pytest.mark.slow

_BLOCK = re.compile(r"<!-- runnable -->\n```sh\n(.*?)```", re.S)
# Run by CI itself: running them from a test would run the suite inside the suite, or double CI's longest step.
RUN_BY_CI = ("make test", "make check")


def runnable_lines(text: str) -> list[str]:
    return [line.strip() for block in _BLOCK.findall(text) for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working tree (timestamps kept, so that make finds the environment current), without the build."""
    copy = tmp_path_factory.mktemp("readme") / "project"
    ignore = shutil.ignore_patterns(".venv*", "build", ".git", "node_modules", "__pycache__", ".pytest_cache")
    shutil.copytree(ROOT, copy, ignore=ignore, copy_function=shutil.copy2)
    return copy


def test_the_documents_mark_the_commands_a_newcomer_runs() -> None:
    lines = runnable_lines(documentation())
    deploytime = "python -m pixelstream.tools.deploytime --stack prod"
    for expected in ("make plan", "make simulate", "make check", deploytime):
        assert any(line.startswith(expected) for line in lines), expected
    ci = (ROOT / ".ci" / "run").read_text()
    for command in RUN_BY_CI:
        assert any(line.startswith(command) for line in lines), command
        assert re.search(rf"^{command}$", ci, re.M), f".ci/run runs {command}"


@pytest.mark.parametrize("line", [ln for ln in runnable_lines(documentation()) if not ln.startswith(RUN_BY_CI)])
def test_a_runnable_line_runs(line: str, tree: Path) -> None:
    venv = Path(sys.prefix)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "VENV": str(venv)}
    # `-o`: the copy never reinstalls the project's environment (an editable install from the copy would point the
    # shared environment's `pixelstream` at it), even when requirements.txt is newer than the environment's stamp.
    command = re.sub(r"^make ", f"make VENV={venv} -o {venv / '.installed'} ", line)
    result = subprocess.run(["bash", "-c", command], cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (line, result.stdout[-2000:], result.stderr[-2000:])


def test_only_marked_blocks_are_taken() -> None:
    text = "```sh\nrm -rf /\n```\n<!-- runnable -->\n```sh\nmake plan   # a comment\n\nmake simulate\n```\n"
    assert runnable_lines(text) == ["make plan   # a comment", "make simulate"]
