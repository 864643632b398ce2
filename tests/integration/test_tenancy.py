"""The real thing, opt-in: a throwaway stack of this program in your tenancy through the Automation API.

    make integration                                  # preview only
    PIXELSTREAM_INTEGRATION_UP=1 make integration     # up, then destroy

Needs the Pulumi CLI logged in to a backend, OCI credentials (~/.oci/config or OCI_CLI_* variables) and
PIXELSTREAM_COMPARTMENT_ID; without them every test here is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def missing_prerequisite() -> str | None:
    if shutil.which("pulumi") is None:
        return "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/)"
    if subprocess.run(["pulumi", "whoami"], capture_output=True).returncode != 0:
        return "the Pulumi CLI is not logged in to a backend (pulumi login)"
    if not (Path.home() / ".oci" / "config").exists() and not os.environ.get("OCI_CLI_TENANCY"):
        return "no OCI credentials (~/.oci/config or OCI_CLI_* variables)"
    if not os.environ.get("PIXELSTREAM_COMPARTMENT_ID"):
        return "PIXELSTREAM_COMPARTMENT_ID is not set (the compartment for the throwaway stack)"
    return None


@pytest.fixture(scope="module")
def stack() -> Iterator[object]:
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    from pulumi import automation as auto

    name = f"it-{uuid.uuid4().hex[:8]}"
    stack = auto.create_stack(stack_name=name, work_dir=str(ROOT))
    try:
        dev = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
        for key, value in dev.items():
            stack.set_config(key, auto.ConfigValue(value if isinstance(value, str) else json.dumps(value)))
        stack.set_config("pixelstream:compartmentId", auto.ConfigValue(os.environ["PIXELSTREAM_COMPARTMENT_ID"]))
        if os.environ.get("OCI_CLI_REGION"):
            stack.set_config("oci:region", auto.ConfigValue(os.environ["OCI_CLI_REGION"]))
        yield stack
    finally:
        if os.environ.get("PIXELSTREAM_INTEGRATION_UP") == "1":
            stack.destroy(on_output=print)
        stack.workspace.remove_stack(name)
        (ROOT / "stacks" / f"Pulumi.{name}.yaml").unlink(missing_ok=True)


def test_preview_plans_the_platform(stack) -> None:
    preview = stack.preview(policy_packs=[str(ROOT / "policy")], on_output=print)
    creates = preview.change_summary.get("create", 0)
    assert creates >= 100, preview.change_summary


def test_up_then_destroy(stack) -> None:
    if os.environ.get("PIXELSTREAM_INTEGRATION_UP") != "1":
        pytest.skip("set PIXELSTREAM_INTEGRATION_UP=1 to create real resources (they are destroyed afterwards)")
    result = stack.up(policy_packs=[str(ROOT / "policy")], on_output=print)
    assert result.summary.result == "succeeded"
    outputs = result.outputs
    assert outputs["kubeconfig"].secret
    assert outputs["clusterId"].value.startswith("ocid1.cluster.")
