"""Every link in the project's own documents that points inside the repository resolves: files exist, and an
anchor names a heading of its file (as GitHub slugs headings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import DOCUMENTS, ROOT

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but hyphens and spaces dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        base, n = slug(heading), 0
        while (candidate := base if n == 0 else f"{base}-{n}") in found:
            n += 1
        found.add(candidate)
    return found


def links(path: Path) -> list[str]:
    text = _CODE.sub("", path.read_text())
    return [a or b for a, b in _LINK.findall(text)]


def test_the_slugs_follow_githubs_rule() -> None:
    assert slug("The player edge: who gets a GPU, and what a player can reach") == (
        "the-player-edge-who-gets-a-gpu-and-what-a-player-can-reach"
    )
    assert slug("Signing players in (`streaming.players.auth.mode`)") == "signing-players-in-streamingplayersauthmode"


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    document = tmp_path / "page.md"
    document.write_text("# Title here\n\n[ok](#title-here) [gone](#nowhere) [file](missing.md) `[code](#x)`\n")
    assert links(document) == ["#title-here", "#nowhere", "missing.md"]
    assert anchors(document) == {"title-here"}


def test_the_readme_is_a_front_door_to_every_page() -> None:
    """The README (issue 25): what it is, the picture, the two commands, the stacks, where to read next, in at
    most 250 lines; every page of the site is one link away."""
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
    pages = {f"docs/{p.name}" for p in DOCUMENTS if p.parent.name == "docs"} - {"docs/index.md"}
    linked = {target.partition("#")[0] for target in links(readme)}
    assert pages <= linked, sorted(pages - linked)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_internal_link_and_anchor_resolves(document: Path) -> None:
    broken = []
    for target in links(document):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto: and the like: outside the repository
        file, _, anchor = target.partition("#")
        resolved = (document.parent / file).resolve() if file else document
        if not resolved.exists():
            broken.append(f"{target}: no file {resolved.relative_to(ROOT) if ROOT in resolved.parents else resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, broken


def test_the_sites_home_page_is_the_readme() -> None:
    from pixelstream.tools.sitehome import HOME, home

    assert HOME.read_text() == home(), "docs/index.md differs from the README: run python -m pixelstream.tools.sitehome"
    assert "](docs/" not in home() and "](getting-started.md)" in home()


def test_the_architecture_picture_is_read_from_the_plan() -> None:
    from pixelstream.tools.architecture import picture
    from pixelstream.tools.offline import plan_stack

    plan, _ = plan_stack("prod", ROOT)
    pic = picture(plan)
    assert pic.subnets["bastion"] == "10.0.0.16/28" and pic.bastion, "prod's way in"
    assert pic.pools["gpu"].startswith("VM.GPU.A10.1") and "stream-main" in pic.workloads["gpu"]
    assert pic.relay == "49152-65535" and "session" in pic.workloads["default"]
