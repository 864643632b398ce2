"""A stand-in for the `oci` executable in the node image tests: every command line is first parsed by the real
OCI CLI's own command tree (oci-cli, in its own virtual environment: make's .venv-oci-cli), so a flag or value the
CLI would refuse fails here too; then it is logged and answered from a scenario.

Run as `python fake_oci.py ARGS...` with FAKE_OCI_DIR holding scenario.json ({"verdict": "...", "stopAfter": n})
and receiving calls.jsonl (one {"argv": [...], "userData": ..., "userDataMode": ...} per call)."""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path

import click
import oci_cli.cli  # noqa: F401 (registers every command group)
from oci_cli import dynamic_loader
from oci_cli.cli_exceptions import ServiceException
from oci_cli.cli_root import cli


def parse(args: list[str]) -> tuple[str, dict]:
    """The leaf command's name and its parsed parameters, as the CLI's click tree reads `args`."""
    for service in ("compute", "ce", "bastion"):
        dynamic_loader.load_service(service)
    obj: dict = collections.defaultdict(dict)  # what the CLI's root callback would have set up
    ctx = cli.make_context("oci", list(args), obj=obj)
    command, rest = cli, [*ctx.protected_args, *ctx.args]
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx, obj=obj)
        rest = [*ctx.protected_args, *ctx.args] if isinstance(command, click.Group) else ctx.args
    if rest:
        raise click.UsageError(f"unexpected arguments {rest}")
    return command.name, ctx.params


def answer(argv: list[str], scenario: dict, calls: list[dict]) -> str:
    words = " ".join(argv[:3])
    if words == "ce node-pool-options get":
        return json.dumps({"data": {"sources": scenario["sources"]}})
    if words == "compute instance launch":
        return json.dumps({"data": {"id": "ocid1.instance.oc1..build", "lifecycle-state": "RUNNING"}})
    if words == "compute instance get":
        polls = sum(" ".join(c["argv"][:3]) == words for c in calls)
        state = "STOPPED" if polls >= scenario.get("stopAfter", 1) else "RUNNING"
        return json.dumps({"data": {"id": argv[4], "lifecycle-state": state}})
    if words == "compute console-history capture":
        return json.dumps({"data": {"id": "ocid1.consolehistory.oc1..h", "lifecycle-state": "SUCCEEDED"}})
    if words == "compute console-history get-content":
        return "boot noise\npixelstream-node-image: pulled x\n" + f"pixelstream-node-image: {scenario['verdict']}\n"
    if words == "compute image create":
        return json.dumps({"data": {"id": "ocid1.image.oc1..baked", "lifecycle-state": "AVAILABLE"}})
    if words == "compute instance terminate":
        if scenario.get("terminateFails"):
            # The CLI's own rendering of a service error (exit status 1, "ServiceError:" then pretty JSON).
            error = {
                "code": "NotAuthorizedOrNotFound",
                "message": "Authorization failed or requested resource not found.",
                "opc-request-id": "req-1",
                "status": 404,
                "operation_name": "terminate_instance",
            }
            str(ServiceException(error, "ServiceError"))
        return ""
    if words.startswith("bastion session create-session-create-dynamic-port-forwarding"):
        return json.dumps({"data": {"id": SESSION, "lifecycle-state": "CREATING"}})
    if words == "bastion session get":
        polls = sum(" ".join(c["argv"][:3]) == words for c in calls)
        state = "ACTIVE" if polls >= scenario.get("activeAfter", 1) else "CREATING"
        command = (
            f"ssh -i <privateKey> -N -D 127.0.0.1:<localPort> -p 22 {SESSION}@host.bastion.{REGION}.oci.oraclecloud.com"
        )
        return json.dumps({"data": {"id": SESSION, "lifecycle-state": state, "ssh-metadata": {"command": command}}})
    if words == "bastion session delete":
        return ""
    raise SystemExit(f"fake oci: no answer for {words}")


SESSION, REGION = "ocid1.bastionsession.oc1.iad.session", "us-ashburn-1"


def main(argv: list[str]) -> int:
    try:
        _, params = parse(argv)
    except click.ClickException as error:
        print(f"Error: {error.format_message()}", file=sys.stderr)
        return 2
    directory = Path(os.environ["FAKE_OCI_DIR"])
    scenario = json.loads((directory / "scenario.json").read_text())
    log = directory / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    call: dict = {"argv": argv}
    if params.get("user_data_file"):
        call["userData"] = params["user_data_file"].read().decode()  # a file, or standard input for "-"
    print(answer(argv, scenario, calls))
    with log.open("a") as out:
        out.write(json.dumps(call) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
