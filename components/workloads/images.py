"""The one table of container images the workloads run, each pinned to a tag or digest."""

from __future__ import annotations

import re
from collections.abc import Mapping

REFERENCE = "ghcr.io/oracle-quickstart/oke-unreal-pixel-streaming"
# Epic's signalling server (Wilbur) images: one tag per Unreal Engine branch, pushed again on every release of
# the branch (EpicGamesExt/PixelStreamingInfrastructure .github/workflows/publish-container-images.yml).
EPIC_SIGNALLING = "docker.io/pixelstreamingunofficial/pixel-streaming-signalling-server"
# The Unreal Engine versions the streaming workload supports: each names the signalling server it runs beside the
# streamer and the frontend library the player page is built with (session/player/package.json), which must
# match (Epic: the signalling protocol follows the engine's Pixel Streaming plugin).
UNREAL_VERSIONS = ("5.6", "5.7")
# The session service's image: built from components/workloads/pixel_streaming/session/ by the repository's
# workflow (.github/workflows/images.yml), which publishes it and prints its digest. `localhost/` names the local
# build, which no node can pull: until a stack pins the published digest in images.session, its plan says so.
SESSION_VERSION = "0.5.0"

IMAGES: dict[str, str] = {
    "coturn": "docker.io/coturn/coturn:4.17.2-r0",
    "python": "docker.io/library/python:3.13.9-slim-bookworm",
    # Holds GPU capacity for the warm placeholders and ends the image pre-pull pods; runs as 65535.
    "pause": "registry.k8s.io/pause:3.10",
    "session": f"localhost/pixelstream/session:{SESSION_VERSION}",
    **{f"signalling-ue{version}": f"{EPIC_SIGNALLING}:{version}" for version in UNREAL_VERSIONS},
    # Players' sign-in (streaming.players.auth.mode: oidc): the release the pinned chart (oauth2-proxy 10.7.0)
    # names as its appVersion.
    "oauth2-proxy": "quay.io/oauth2-proxy/oauth2-proxy:v7.15.3",
    # The reference system publishes these only as `latest`; pin them per stack (images.<name>) to a digest or to
    # your own build. The plan warns while they float. `pxdemo` is the reference's Unreal Engine 4.27 demo: it does
    # not speak the signalling protocol of the supported versions, so a stack names its own Unreal build.
    "podproxy": f"{REFERENCE}/podproxy:latest",
    "unreal": f"{REFERENCE}/pxdemo:latest",
    # The simulation fleet's instances: NVIDIA's image on NGC (a login is needed to pull it), the tag the Isaac Sim
    # repository's Docker README names (isaac-sim/IsaacSim tools/docker/README.md); runs as uid 1234.
    "isaacsim": "nvcr.io/nvidia/isaac-sim:6.0.1",
    # The AI worker pool's. go-livepeer v0.9.1 is the newest release with the remote AI worker (master removed it
    # after the tag: 772f70aec); its image runs as root by default but needs nothing of root. livepeer/ai-runner
    # publishes `v<version>` for the base runner (the batch pipelines) and `<pipeline>-v<version>` for the
    # pipelines with images of their own (.github/workflows/ai-runner-docker-batch-*.yaml); v0.14.1 is its
    # newest release. The Docker API stand-in runs on the workloads' Python image.
    "livepeer": "docker.io/livepeer/go-livepeer:v0.9.1",
    "ai-runner": "docker.io/livepeer/ai-runner:v0.14.1",
    "ai-runner-audio-to-text": "docker.io/livepeer/ai-runner:audio-to-text-v0.14.1",
    "ai-runner-llm": "docker.io/livepeer/ai-runner:llm-v0.14.1",
    "ai-runner-segment-anything-2": "docker.io/livepeer/ai-runner:segment-anything-2-v0.14.1",
    "ai-runner-text-to-speech": "docker.io/livepeer/ai-runner:text-to-speech-v0.14.1",
}
# The images each workload runs (and lets a stack override), by name in the table.
STREAMING_IMAGES = (
    *("coturn", "python", "pause", "session", "oauth2-proxy", "podproxy", "unreal"),
    *(f"signalling-ue{version}" for version in UNREAL_VERSIONS),
)
SIMULATION_IMAGES = ("isaacsim", "python")


def streaming_images(overrides: Mapping[str, str]) -> dict[str, str]:
    """The pixel-streaming workload's images: the table's, with a stack's overrides by name."""
    return {**{name: IMAGES[name] for name in STREAMING_IMAGES}, **overrides}


_AI_WORKER_NAMES = ("livepeer", "ai-runner", "ai-runner-audio-to-text", "ai-runner-llm")
_AI_WORKER_NAMES += ("ai-runner-segment-anything-2", "ai-runner-text-to-speech", "python")
AI_WORKER_IMAGES: dict[str, str] = {name: IMAGES[name] for name in _AI_WORKER_NAMES}

_REFERENCE = re.compile(
    r"^(?P<repository>[a-z0-9]+([._/:-][a-z0-9]+)*?)(:(?P<tag>[\w][\w.-]{0,127})|@(?P<digest>sha256:[a-f0-9]{64}))$"
)


def image_problem(reference: str) -> str | None:
    """Why `reference` is not a pinned image reference, or None when it is."""
    match = _REFERENCE.match(reference)
    if not match:
        return f"{reference} is not an image reference with a tag or digest (registry/repository:tag or @sha256:...)"
    return None


# Oldest releases the workload's configuration is safe with: coturn 4.9 fixed CVE-2026-27624 (IPv4-mapped IPv6
# peers passed its IPv4 denials) and turned the CLI and DTLS off unless asked for.
MINIMUM_VERSIONS: dict[str, tuple[int, ...]] = {"coturn": (4, 9)}
_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)")


def version_problem(name: str, reference: str) -> str | None:
    """Why the image `name` at `reference` is older than the workload allows, or None (also for digests and
    tags that carry no version, which cannot be judged here)."""
    minimum = MINIMUM_VERSIONS.get(name)
    match = _REFERENCE.match(reference)
    tag = match["tag"] if match else None
    version = _VERSION.match(tag) if tag else None
    if minimum is None or version is None:
        return None
    found = tuple(int(part) for part in version[1].split("."))
    if found < minimum:
        wanted = ".".join(map(str, minimum))
        return f"{reference} is older than {name} {wanted}, the oldest release this configuration is safe with"
    return None


# Tags their publisher moves to new builds (besides the usual names), so two pulls may run different code.
MOVING_TAGS = frozenset(f"{EPIC_SIGNALLING}:{version}" for version in UNREAL_VERSIONS)


def floating(reference: str) -> bool:
    """A tag that moves on its own, so two pulls may run different code."""
    match = _REFERENCE.match(reference)
    return reference in MOVING_TAGS or bool(match and match["tag"] in ("latest", "edge", "main", "master"))


def unpublished(reference: str) -> bool:
    """A name only a local build answers to (`localhost/...`): no node can pull it."""
    return reference.startswith("localhost/")
