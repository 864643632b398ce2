"""python -m pixelstream.tools.sitehome: the documentation site's home page (docs/index.md), the README as the
site shows it: one text, the README's links to docs/ made relative to the site. `--check` fails when the
committed page differs from what the README gives today."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .generated import generate_or_check

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HOME = ROOT / "docs" / "index.md"
_HEADER = "<!-- generated from README.md by python -m pixelstream.tools.sitehome: edit the README -->\n"


def home(readme: str | None = None) -> str:
    """The README with its `docs/` links relative to the site; its runnable marks dropped (the README's blocks
    run once, from the README)."""
    text = README.read_text() if readme is None else readme
    text = re.sub(r"\]\(docs/", "](", text)
    text = text.replace("<!-- runnable -->\n", "")
    return _HEADER + text


def main(argv: list[str] | None = None) -> int:
    description = __doc__.split("\n")[0]
    return generate_or_check("python -m pixelstream.tools.sitehome", description, HOME, home, "README.md", argv)


if __name__ == "__main__":
    sys.exit(main())
