"""python -m pixelstream.tools.bastion --stack <stack> [--first-deploy] -- <command>: run a command (`pulumi up`)
that reaches a private Kubernetes API through the stack's OCI bastion.

The stack's API endpoint stays private; with `cluster.endpoint.bastion.clientCidrs` set, the stack declares an OCI
bastion whose sessions may reach the API on 6443 and nothing else. This tool, with your OCI CLI profile:

1. with `--first-deploy`, runs `pulumi up --yes --stack <stack> --exclude <the Kubernetes provider, the node pools
   and the OKE add-ons> --exclude-dependents`: the network, the cluster and the bastion, which nothing else is
   needed for (the node pools and add-ons come in the second step, booting while the charts install). A resource
   is excluded with its provider, its parent or any dependency (Pulumi's step generator, isExcludedFromUpdate),
   and an excluded one is neither created nor changed nor deleted, so this is safe on a stack that exists;
2. opens a SOCKS5 session on the bastion (`oci bastion session create-session-create-dynamic-port-forwarding-...`)
   with a key pair made for it, waits for it to be ACTIVE, and holds it with `ssh -N -D 127.0.0.1:<port>`;
3. runs the command with PIXELSTREAM_KUBERNETES_PROXY=socks5://127.0.0.1:<port>: the stack's Kubernetes provider
   then reaches the API through the session (its kubeconfig's proxy-url);
4. whatever happened, stops ssh, deletes the session and the key.

    python -m pixelstream.tools.bastion --stack prod --first-deploy -- pulumi up --yes --stack prod
    python -m pixelstream.tools.bastion --stack prod -- pulumi up --yes --stack prod
    python -m pixelstream.tools.bastion --stack prod -- kubectl --kubeconfig ~/.kube/prod get nodes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..config import ConfigError, StackConfig
from ..oci.cluster import KUBERNETES_PROXY_ENV
from .capacity.stack import resolve
from .commands import cli_error
from .offline import Plan, engine_urn, plan_stack

PROVIDER_TYPE = "pulumi:providers:kubernetes"
SESSION_READY_SECONDS = 300
TUNNEL_READY_SECONDS = 60
DEFAULT_PORT = 1080


class BastionError(Exception):
    """What stops the tool, in one line."""


# What the first step leaves out besides the Kubernetes provider: what takes minutes after the control plane and
# that nothing the bastion needs waits for. Created in the second step, the pools boot while the charts install.
LATER = ("oci:ContainerEngine/nodePool:NodePool", "oci:ContainerEngine/addon:Addon")


def first_step_exclusions(plan: Plan) -> list[str]:
    """The URNs `pulumi up --exclude ... --exclude-dependents` is given in the first step: the stack's Kubernetes
    provider on the OKE cluster, and the node pools and OKE add-ons (engine URNs, from the offline plan: the
    same program, the same names)."""
    providers = [r for r in plan.resources if r.type == PROVIDER_TYPE and r.parent and "OkeCluster" in r.parent]
    if len(providers) != 1:
        raise BastionError(f"stack {plan.stack} declares {len(providers)} OKE Kubernetes providers; expected one")
    later = sorted((r for r in plan.resources if r.type in LATER), key=lambda r: r.urn)
    return [engine_urn(r.urn) for r in (*providers, *later)]


def second_step(plan: Plan) -> set[str]:
    """The (plan) URNs the first step leaves out: the exclusions and everything excluded with them, a resource
    being excluded when its provider, its parent or any of its dependencies is (Pulumi's step generator,
    isExcludedFromUpdate, over State.GetAllDependencies). But not the provider itself: a provider is always
    part of an update (the step generator's isImplicitlyTargetedResource), so the first step creates it too; it
    connects to nothing until a resource uses it, and its cluster identifier (OkeCluster) makes the second
    step's proxy an update of it, not a replacement."""
    roots = set(first_step_exclusions(plan))
    excluded = {r.urn for r in plan.resources if engine_urn(r.urn) in roots}
    while True:
        more = {
            r.urn
            for r in plan.resources
            if r.urn not in excluded and {*r.dependencies, r.parent, (r.provider or "").rsplit("::", 1)[0]} & excluded
        }
        if not more:
            return excluded - {r.urn for r in plan.resources if r.type == PROVIDER_TYPE}
        excluded |= more


def attached(args: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run a long command (`pulumi up`) on this terminal until it ends; its exit status. A Ctrl-C reaches it from
    the terminal (it shares our process group) and it is left to stop as it will: pulumi cancels gracefully, and
    killing it would leave pending operations and its lock. This process ignores the interrupt meanwhile. A
    SIGTERM or SIGHUP to this process (main turns them into an interrupt) is passed on as the same interrupt, and
    the command is waited for before this process unwinds."""
    child = subprocess.Popen(list(args), env=env)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        child.wait()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def checked(args: Sequence[str]) -> str:
    """What a short command printed; its failure as one line (an OCI service error's code and message)."""
    done = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BastionError(f"{' '.join(args[:4])} failed: {cli_error(done.stderr)}")
    return done.stdout


def stack_outputs(stack: str) -> tuple[str, str]:
    """The stack's bastion and API endpoint, from its outputs."""
    outputs = json.loads(checked(["pulumi", "stack", "output", "--json", "--stack", stack]) or "{}")
    if not outputs.get("bastionId"):
        raise BastionError(
            f"stack {stack} has no bastionId output: set cluster.endpoint.bastion.clientCidrs and run with "
            "--first-deploy (or pulumi up from inside the network)"
        )
    return outputs["bastionId"], outputs.get("apiPrivateEndpoint", "")


def create_session(bastion_id: str, public_key: str, ttl: int) -> str:
    """A SOCKS5 session on the bastion (its id), still CREATING. The key details are the CLI's own shape
    (`publicKeyContent`, as oci-cli's create_session builds it)."""
    created = checked(
        [
            *(
                "oci",
                "bastion",
                "session",
                "create-session-create-dynamic-port-forwarding-session-target-resource-details",
            ),
            *("--bastion-id", bastion_id, "--key-details", json.dumps({"publicKeyContent": public_key})),
            *("--key-type", "PUB", "--session-ttl-in-seconds", str(ttl), "--display-name", "pixelstream-deploy"),
        ],
    )
    return json.loads(created)["data"]["id"]


def active_session(session: str, poll: float) -> str:
    """The `user@host` ssh connects to, once the session is ACTIVE."""
    deadline = time.monotonic() + SESSION_READY_SECONDS
    while True:
        data = json.loads(checked(["oci", "bastion", "session", "get", "--session-id", session]))["data"]
        if data["lifecycle-state"] == "ACTIVE":
            return _ssh_target(data)
        if data["lifecycle-state"] not in ("CREATING",) or time.monotonic() > deadline:
            raise BastionError(f"bastion session {session} is {data['lifecycle-state']}, not ACTIVE")
        time.sleep(poll)


def _ssh_target(session: dict) -> str:
    """`<session id>@host.bastion.<region>.oci.oraclecloud.com`, from the command the service hands out."""
    command = session.get("ssh-metadata", {}).get("command", "")
    targets = [word for word in command.split() if "@host.bastion." in word]
    if not targets:
        raise BastionError("the bastion session names no host to connect to (ssh-metadata.command)")
    return targets[0]


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def through_bastion(
    stack: str,
    command: Sequence[str],
    *,
    first_deploy: bool = False,
    project_dir: Path = Path("."),
    port: int = DEFAULT_PORT,
    ttl: int = 10800,
    poll: float = 5,
    say: Callable[[str], None] = print,
) -> int:
    """Steps 1-4 of the module's docstring; returns the command's exit status."""
    if first_deploy:
        plan, _ = plan_stack(stack, project_dir)
        excludes = [arg for urn in first_step_exclusions(plan) for arg in ("--exclude", urn)]
        say("pulumi up of the network, the cluster and the bastion (the rest goes through the API, next)")
        if attached(["pulumi", "up", "--yes", "--stack", stack, *excludes, "--exclude-dependents"]):
            raise BastionError("the first pulumi up (network, cluster, bastion) failed: see its output")
    bastion, endpoint = stack_outputs(stack)
    if _port_open(port):
        raise BastionError(f"127.0.0.1:{port} is taken already: choose another with --port")
    keys = Path(tempfile.mkdtemp(prefix="pixelstream-bastion-"))  # 0700: this user only
    session: str | None = None
    tunnel: subprocess.Popen | None = None
    try:
        checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pixelstream", "-f", str(keys / "key")])
        say(f"opening a SOCKS5 session on {bastion} to {endpoint or 'the API'}")
        session = create_session(bastion, (keys / "key.pub").read_text().strip(), ttl)
        target = active_session(session, poll)
        tunnel = subprocess.Popen(ssh_command(keys, port, target), stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + TUNNEL_READY_SECONDS
        while not _port_open(port):
            if tunnel.poll() is not None or time.monotonic() > deadline:
                raise BastionError(f"ssh to the bastion did not open 127.0.0.1:{port}")
            time.sleep(0.2)
        say(f"running {' '.join(command)} through socks5://127.0.0.1:{port}")
        return attached(command, env={**os.environ, KUBERNETES_PROXY_ENV: f"socks5://127.0.0.1:{port}"})
    finally:
        _close(tunnel, session, keys, say)


def ssh_command(keys: Path, port: int, target: str) -> list[str]:
    """ssh holding the SOCKS5 port: the session's key alone (no agent keys, none of ~/.ssh/config), no prompt. The
    bastion's host key is taken on first sight into a throwaway known_hosts (the service publishes none to pin);
    what crosses the tunnel is TLS to the API, checked against the kubeconfig's CA."""
    return [
        *("ssh", "-N", "-F", "/dev/null", "-D", f"127.0.0.1:{port}", "-i", str(keys / "key"), "-p", "22"),
        *("-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"),
        *("-o", "ServerAliveInterval=30", "-o", "StrictHostKeyChecking=accept-new"),
        *("-o", f"UserKnownHostsFile={keys / 'known_hosts'}", target),
    ]


def _close(tunnel: subprocess.Popen | None, session: str | None, keys: Path, say: Callable[[str], None]) -> None:
    """Each step on its own, so that none is skipped because another failed: ssh stopped (killed if it lingers),
    the session deleted, the key removed."""
    if tunnel is not None:
        tunnel.terminate()
        try:
            tunnel.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tunnel.kill()
    if session is not None:
        deleted = subprocess.run(
            ["oci", "bastion", "session", "delete", "--session-id", session, "--force"],
            capture_output=True,
            text=True,
            check=False,
        )
        if deleted.returncode != 0:
            say(f"could not delete bastion session {session} ({cli_error(deleted.stderr)}): it ends at its TTL")
    shutil.rmtree(keys, ignore_errors=True)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelstream.tools.bastion", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True, help="the stack whose bastion to use (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--first-deploy", action="store_true", help="pulumi up all but the Kubernetes layers first")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the local SOCKS5 port (default 1080)")
    parser.add_argument("--project-dir", type=Path, default=Path("."))
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run through the bastion")
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give the command to run after --, e.g. -- pulumi up --yes --stack prod")
    if not 1024 <= options.port <= 65535:
        parser.error(f"--port {options.port}: a port from 1024 to 65535")
    # A SIGTERM or SIGHUP (a closed terminal, a cancelled CI job) unwinds as an interrupt does, through the clean-up.
    previous = {stop: signal.signal(stop, _interrupt) for stop in (signal.SIGTERM, signal.SIGHUP)}
    try:
        config = StackConfig.from_stack_file(resolve(options.stack, options.project_dir))
        ttl = config.cluster.endpoint.bastion.max_session_ttl_seconds
        return through_bastion(
            options.stack,
            command,
            first_deploy=options.first_deploy,
            project_dir=options.project_dir,
            port=options.port,
            ttl=ttl,
        )
    except KeyboardInterrupt:
        print("error: interrupted; the session and its key are gone", file=sys.stderr)
        return 130
    except (BastionError, ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


if __name__ == "__main__":
    sys.exit(main())
