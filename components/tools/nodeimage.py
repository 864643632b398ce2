"""python -m pixelstream.tools.nodeimage --stack <stack>: a GPU node image with the stack's stream images already in
the container store, for `nodePools.gpu.imageId`.

A cold GPU node pulls the Unreal image (several GB) before its first stream can start; a node booted from this
image finds it there. The build, with the OCI CLI and the credentials of your OCI CLI profile:

1. the base: the newest OKE GPU image for the stack's Kubernetes version and GPU shape, chosen as the plan chooses
   the pool's image (`oci ce node-pool-options get`; OKE supports custom images based on its OKE images), or
   `--base-image-id`;
2. a build instance of the pool's shape in `--subnet-id` (one with a route to the registries: the stack's worker
   subnet has the NAT gateway), whose user data grows the root file system, pulls every image the pre-pull
   DaemonSet pulls (each build's Unreal image and signalling images) with crictl into CRI-O's store, and, once
   cloud-init has finished, removes cloud-init's state and logs, the user data and its credentials with them
   (`cloud-init clean --logs`, so the image boots as a new node and OKE's own user data runs), checks that nothing
   is left, and powers off;
3. the verdict read from the instance's serial console history (`pixelstream-node-image: READY` or `FAILED`);
4. a custom image of the stopped instance, named after the stack, the Kubernetes version and a digest of the
   images; the instance is terminated whatever happened.

Registry credentials come from `--pull-secret FILE`, a Docker config JSON (the `.dockerconfigjson` of the stack's
image pull secret); only those of the registries the images come from are used. They reach the instance in its
user data only, handed to the OCI CLI on its standard input; they are never printed or written to a file here.
`--dry-run` prints the recipe and the user data (credentials left out) and calls nothing.

The pre-pull DaemonSet stays: an image that changed since the node image was built is pulled as before.

    python -m pixelstream.tools.nodeimage --stack prod --dry-run
    python -m pixelstream.tools.nodeimage --stack prod --compartment-id ocid1.compartment... \\
        --subnet-id ocid1.subnet... --availability-domain Uocm:EU-FRANKFURT-1-AD-1 --pull-secret ~/ocir.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from ..config import ConfigError, StackConfig
from ..oci.node_pool import select_node_image
from ..workloads.images import streaming_images
from ..workloads.pixel_streaming.gpu_capacity import GpuCapacityArgs, prepull_images
from .capacity.stack import resolve
from .commands import cli_error

MARK = "pixelstream-node-image:"
STOP_TIMEOUT_SECONDS = 3600
"""How long the images may take to pull before the build gives up (several GB each, from a remote registry)."""
POLL_SECONDS = 20
# The serial console's history keeps its last megabyte (Compute: instance console history); the verdict is the
# last line the build writes.
CONSOLE_BYTES = 1_048_576


class NodeImageError(Exception):
    """A build that cannot go on, said in one line."""


@dataclass(frozen=True)
class Recipe:
    """What a stack's node image holds and is built on."""

    stack: str
    shape: str
    kubernetes_version: str
    boot_volume_gbs: int
    images: tuple[str, ...]

    @property
    def digest(self) -> str:
        """The first 12 hex digits of the images' SHA-256, in order: a changed image is a new node image."""
        return hashlib.sha256("\n".join(self.images).encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"pixelstream-gpu-{self.stack}-{self.kubernetes_version}-{self.digest}"


def recipe(stack: str, project: Path) -> Recipe:
    """The stack's recipe: its GPU pool's shape and boot volume, its Kubernetes version, and the images the pre-pull
    DaemonSet pulls (prepull_images, the one list both use)."""
    config = StackConfig.from_stack_file(resolve(stack, project))
    streaming, pool = config.streaming, config.node_pools.gpu
    images = streaming_images(streaming.images)
    args = GpuCapacityArgs(namespace=streaming.namespace, images=images, builds=streaming.stream_builds())
    images = tuple(dict.fromkeys(image for image, _ in prepull_images(args).values()))
    return Recipe(stack, pool.shape, config.cluster.kubernetes_version, pool.boot_volume_gbs, images)


def registry(image: str) -> str:
    """The registry host of an image reference, as Docker reads one: the first part when it names a host (a dot,
    a port or localhost), else Docker Hub."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def pull_auths(path: Path) -> dict[str, str]:
    """Registry host -> base64 `user:password`, from a Docker config JSON; errors name the key, never a value."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise NodeImageError(f"--pull-secret {path}: cannot read it ({error.strerror})") from None
    except json.JSONDecodeError:
        raise NodeImageError(f'--pull-secret {path}: not JSON (a Docker config: {{"auths": {{...}}}})') from None
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict) or not auths:
        raise NodeImageError(f'--pull-secret {path}: no `auths` object (a Docker config: {{"auths": {{...}}}})')
    found = {}
    for key, entry in auths.items():
        where = f"--pull-secret {path}: auths.{key}"
        if not isinstance(entry, dict):
            raise NodeImageError(f"{where} is not an object")
        if not _host(key):
            raise NodeImageError(f"{where}: names no registry host")
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            if not _is_user_password(entry["auth"]):
                raise NodeImageError(f"{where}.auth is not the base64 of user:password")
            found[_host(key)] = entry["auth"]
        elif isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            pair = f"{entry['username']}:{entry['password']}"
            found[_host(key)] = base64.b64encode(pair.encode()).decode()
        else:
            raise NodeImageError(f"{where} has neither `auth` nor `username` and `password`")
    return found


def _is_user_password(auth: str) -> bool:
    try:
        return b":" in base64.b64decode(auth, validate=True)
    except ValueError:
        return False


def _host(key: str) -> str:
    """A Docker config's registry key as a host: `https://index.docker.io/v1/` (Docker's own key) is docker.io."""
    host = key.removeprefix("https://").removeprefix("http://").split("/")[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


# The build instance's user data. cloud-init runs a user-data file that starts with #! as a script, once, at the
# first boot (cloud-init's user-data formats: "User-data script"). crictl talks to CRI-O, so the images land in the
# store the kubelet uses. The credential reaches crictl in its environment only: CRICTL_AUTH is `crictl pull
# --auth` (a base64 user:password; cri-tools cmd/crictl/image.go), an empty one meaning none. cloud-init is still
# running the script when the pulls end, so the sealing (its state and logs removed, the user data with them,
# which `cloud-init clean` does) runs from a unit of its own once cloud-init has finished, checks that nothing is
# left, and only then says READY: an image is captured only from a sealed disk.
_USER_DATA = """#!/bin/bash
# pixelstream.tools.nodeimage: pull the GPU node's stream images into CRI-O's store, seal the disk, power off.
set -uo pipefail
CONSOLE=${PIXELSTREAM_CONSOLE:-/dev/ttyS0}
CLOUD=${PIXELSTREAM_CLOUD_DIR:-/var/lib/cloud}
say() { echo "@MARK@ $*" >>"$CONSOLE"; }
finished=0
fail() {
  finished=1
  say "FAILED $*"
  systemctl stop crio
  cloud-init clean --logs
  sync
  poweroff
  exit 1
}
trap '[ "$finished" = 1 ] || fail "the build script stopped before the seal"' EXIT
declare -A AUTH=(@AUTHS@)
registry_of() {
  local first=${1%%/*}
  if [[ $1 == */* && ( $first == *.* || $first == *:* || $first == localhost ) ]]; then
    echo "$first"
  else
    echo docker.io
  fi
}
pull() {
  local auth=${AUTH[$(registry_of "$1")]:-}
  for attempt in 1 2 3; do
    if CRICTL_AUTH="$auth" crictl pull "$1" >/dev/null; then say "pulled $1"; return 0; fi
    say "attempt $attempt of 3 failed: $1"
    sleep 15
  done
  fail "pulling $1"
}
# Platform images use only part of a larger boot volume until the file system is grown (Oracle Linux: oci-growfs).
if [ -x /usr/libexec/oci-growfs ]; then
  /usr/libexec/oci-growfs -y >/dev/null || say "oci-growfs failed: the pulls may run out of space"
fi
systemctl start crio || fail "starting crio"
@PULLS@
unset AUTH
seal='
say() { echo "@MARK@ $*" >>"$PIXELSTREAM_CONSOLE"; }
cloud-init status --wait >/dev/null
systemctl stop crio || { say "FAILED stopping crio"; poweroff; exit 1; }
cloud-init clean --logs || { say "FAILED cleaning cloud-init"; poweroff; exit 1; }
if [ -e "$PIXELSTREAM_CLOUD_DIR/instance" ] || [ -n "$(ls -A "$PIXELSTREAM_CLOUD_DIR/instances" 2>/dev/null)" ]; then
  say "FAILED cloud-init state is left in $PIXELSTREAM_CLOUD_DIR"; poweroff; exit 1
fi
say "READY @COUNT@ images"
sync
poweroff
'
systemd-run --no-block --unit=pixelstream-seal --setenv=PIXELSTREAM_CONSOLE="$CONSOLE" \\
  --setenv=PIXELSTREAM_CLOUD_DIR="$CLOUD" /bin/bash -c "$seal" >/dev/null || fail "scheduling the seal"
finished=1
"""


def user_data(recipe: Recipe, auths: Mapping[str, str], redacted: bool = False) -> str:
    """The build instance's script; `redacted` leaves out the credentials (for --dry-run)."""
    entries = " ".join(
        f"[{shlex.quote(host)}]={shlex.quote('<from --pull-secret>' if redacted else auth)}"
        for host, auth in sorted(auths.items())
    )
    pulls = "\n".join(f"pull {shlex.quote(image)}" for image in recipe.images)
    script = _USER_DATA.replace("@MARK@", MARK).replace("@COUNT@", str(len(recipe.images)))
    return script.replace("@AUTHS@", entries).replace("@PULLS@", pulls)


Runner = Callable[..., str]
"""`oci(args, stdin=None)`: what `oci ARGS` printed, with `stdin` as its input."""


def oci_cli(args: Sequence[str], stdin: str | None = None) -> str:
    """Run `oci ARGS` (the OCI CLI, with its profile's credentials) and return what it printed."""
    try:
        done = subprocess.run(["oci", *args], input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise NodeImageError("the OCI CLI (oci) is not on PATH: pip install oci-cli, then oci setup config") from None
    if done.returncode != 0:
        raise NodeImageError(f"oci {' '.join(args[:3])} failed: {cli_error(done.stderr)}")
    return done.stdout


@dataclass(frozen=True)
class Placement:
    compartment_id: str
    subnet_id: str
    availability_domain: str


def build(
    recipe: Recipe,
    placement: Placement,
    auths: Mapping[str, str],
    base_image_id: str | None = None,
    oci: Runner = oci_cli,
    poll_seconds: float = POLL_SECONDS,
    say: Callable[[str], None] = print,
) -> str:
    """Build the node image and return its OCID; the build instance is terminated whatever happens."""
    base = base_image_id or _base_image(recipe, placement, oci)
    needed = {registry(image) for image in recipe.images}
    auths = {host: auth for host, auth in auths.items() if host in needed}  # no other registry's credentials travel
    say(f"base image {base}; launching the build instance ({recipe.shape})")
    instance = _launch(recipe, placement, auths, base, oci)
    try:
        _wait_stopped(instance, oci, poll_seconds)
        verdict = _verdict(instance, oci)
        if not verdict.startswith("READY"):
            raise NodeImageError(f"the build instance reported: {verdict}")
        say(f"{verdict}; capturing the image {recipe.name}")
        created = _json(
            oci(
                [
                    *("compute", "image", "create", "--compartment-id", placement.compartment_id),
                    *("--instance-id", instance, "--display-name", recipe.name),
                    *(
                        "--freeform-tags",
                        json.dumps({"pixelstream-stack": recipe.stack, "pixelstream-images": recipe.digest}),
                    ),
                    *("--wait-for-state", "AVAILABLE", "--max-wait-seconds", "7200"),
                ]
            )
        )
        return created["data"]["id"]
    finally:
        _terminate(instance, oci, say)


def _terminate(instance: str, oci: Runner, say: Callable[[str], None]) -> None:
    """Terminate the build instance and its boot volume; if that fails, say so before anything else."""
    say(f"terminating the build instance {instance}")
    pending = sys.exc_info()[1]
    try:
        # terminate's --wait-for-state waits on its work request: ACCEPTED, IN_PROGRESS, FAILED or SUCCEEDED.
        oci(
            [
                *("compute", "instance", "terminate", "--instance-id", instance, "--force"),
                *("--preserve-boot-volume", "false", "--wait-for-state", "SUCCEEDED"),
            ]
        )
    except NodeImageError as error:
        before = f"{pending}; then " if pending else ""
        raise NodeImageError(f"{before}{error}: the build instance {instance} may still run, terminate it") from None


def _json(text: str) -> dict[str, Any]:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise NodeImageError(f"the OCI CLI printed no JSON: {text[:80]!r}") from None


def _base_image(recipe: Recipe, placement: Placement, oci: Runner) -> str:
    options = _json(
        oci(
            [
                "ce",
                "node-pool-options",
                "get",
                "--node-pool-option-id",
                "all",
                "--compartment-id",
                placement.compartment_id,
            ]
        )
    )
    sources = [
        {"source_name": s["source-name"], "image_id": s["image-id"]}
        for s in options["data"]["sources"]
        if s.get("source-type") == "IMAGE"
    ]
    try:
        return select_node_image(sources, recipe.kubernetes_version, recipe.shape)[0]
    except pulumi.RunError as error:
        raise NodeImageError(f"{error} (or pass --base-image-id)") from None


def _launch(recipe: Recipe, placement: Placement, auths: Mapping[str, str], base: str, oci: Runner) -> str:
    """Launch the build instance and return its id at once (the caller's `finally` terminates it from then). Its
    user data, credentials and all, goes to the CLI on its standard input (`--user-data-file -`): no file holds
    it here."""
    size = str(recipe.boot_volume_gbs)
    launched = oci(
        [
            *("compute", "instance", "launch", "--availability-domain", placement.availability_domain),
            *("--compartment-id", placement.compartment_id, "--subnet-id", placement.subnet_id),
            *("--shape", recipe.shape, "--image-id", base, "--boot-volume-size-in-gbs", size),
            *("--display-name", f"{recipe.name}-build", "--assign-public-ip", "false", "--user-data-file", "-"),
        ],
        stdin=user_data(recipe, auths),
    )
    return _json(launched)["data"]["id"]


def _wait_stopped(instance: str, oci: Runner, poll_seconds: float) -> None:
    """Until the script powers the instance off (`oci compute instance get` has no --wait-for-state)."""
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while True:
        state = _json(oci(["compute", "instance", "get", "--instance-id", instance]))["data"]["lifecycle-state"]
        if state == "STOPPED":
            return
        if state not in ("PROVISIONING", "STARTING", "RUNNING", "STOPPING"):
            raise NodeImageError(f"the build instance is {state}")
        if time.monotonic() > deadline:
            raise NodeImageError(f"the build instance did not finish within {STOP_TIMEOUT_SECONDS // 60} minutes")
        time.sleep(poll_seconds)


def _verdict(instance: str, oci: Runner) -> str:
    """The build script's last word on the serial console: `READY n images` or `FAILED ...`."""
    capture = oci(["compute", "console-history", "capture", "--instance-id", instance, "--wait-for-state", "SUCCEEDED"])
    history = _json(capture)["data"]["id"]
    text = oci(
        [
            *("compute", "console-history", "get-content", "--instance-console-history-id", history),
            *("--file", "-", "--length", str(CONSOLE_BYTES)),
        ]
    )
    words = [line.split(MARK, 1)[1].strip() for line in text.splitlines() if MARK in line]
    verdicts = [w for w in words if w.startswith(("READY", "FAILED"))]
    return verdicts[-1] if verdicts else "nothing (the script did not run: check the instance's console)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pixelstream.tools.nodeimage", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="prod", help="stacks/Pulumi.<stack>.yaml, or a stack file")
    parser.add_argument("--compartment-id", help="where the build instance and the image go")
    parser.add_argument("--subnet-id", help="a private subnet with a route to the registries (the worker subnet)")
    parser.add_argument("--availability-domain", help="the build instance's, e.g. Uocm:EU-FRANKFURT-1-AD-1")
    parser.add_argument("--pull-secret", type=Path, help="a Docker config JSON with the registries' credentials")
    parser.add_argument("--base-image-id", help="build on this image instead of the newest OKE GPU image")
    parser.add_argument("--dry-run", action="store_true", help="print the recipe and the user data; call nothing")
    parser.add_argument("--project-dir", type=Path, default=Path("."))
    return parser


def _check_auths(recipe: Recipe, auths: Mapping[str, str], secret: Path) -> None:
    """With credentials given, every private registry the images come from needs its own (Docker Hub may be public)."""
    missing = sorted({registry(i) for i in recipe.images} - set(auths) - {"docker.io"})
    if missing:
        raise NodeImageError(f"--pull-secret {secret}: no credentials for {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        made = recipe(options.stack, options.project_dir)
        auths = pull_auths(options.pull_secret) if options.pull_secret else {}
        if options.pull_secret:
            _check_auths(made, auths, options.pull_secret)
        if options.dry_run:
            images = "".join(f"  {image}\n" for image in made.images)
            print(f"node image {made.name} ({made.shape}, Kubernetes {made.kubernetes_version}):\n{images}")
            print(user_data(made, auths, redacted=True), end="")
            return 0
        wanted = {"--compartment-id": options.compartment_id, "--subnet-id": options.subnet_id}
        wanted["--availability-domain"] = options.availability_domain
        if missing := [flag for flag, value in wanted.items() if not value]:
            raise NodeImageError(f"{', '.join(missing)}: needed for a build (or --dry-run)")
        placement = Placement(options.compartment_id, options.subnet_id, options.availability_domain)
        image = build(made, placement, auths, options.base_image_id)
    except (NodeImageError, ConfigError, FileNotFoundError, pulumi.RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"image {image} ({made.name}), with {len(made.images)} images; in stacks/Pulumi.{made.stack}.yaml:")
    print(f"  pixelstream:nodePools:\n    gpu:\n      imageId: {image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
