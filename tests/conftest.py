"""Shared test helpers. Every test that touches Pulumi runs on its own event loop with preview=False
(pulumi-practice §1): `run_offline` for what a program declares, `pulumi_runtime` for Output assertions
inside tests decorated with `@pulumi.runtime.test`."""

from __future__ import annotations

import base64
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelstream.tools.offline import OfflineMocks, RecordingMonitor, offline_runtime

ROOT = Path(__file__).resolve().parent.parent
COMPARTMENT = "ocid1.compartment.oc1..aaaatest"
# An address plan of its own (pixelstream:network) for the tests that follow the CIDRs through a plan.
OTHER_ADDRESS_PLAN = {
    "vcnCidr": "172.20.0.0/16",
    "subnets": {
        "apiEndpoint": "172.20.0.0/28",
        "loadBalancers": "172.20.1.0/24",
        "turn": "172.20.2.0/24",
        "workers": "172.20.16.0/20",
        "pods": "172.20.64.0/18",
        "streamPods": "172.20.128.0/20",
    },
}


@pytest.fixture
def mocks() -> OfflineMocks:
    return OfflineMocks()


@pytest.fixture
def pulumi_runtime(mocks: OfflineMocks) -> Iterator[RecordingMonitor]:
    with offline_runtime(project="test", stack="test", mocks=mocks) as monitor:
        yield monitor


def decode_user_data(inputs: dict) -> str:
    return base64.b64decode(inputs["nodeMetadata"]["user_data"]).decode()


# The in-cluster helper programs import each other as top-level modules, as they run from /helpers.
APP = ROOT / "components" / "workloads" / "pixel_streaming" / "app"
SHARED_APP = ROOT / "components" / "workloads" / "app"
sys.path[:0] = [str(APP), str(SHARED_APP)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
"""The project's own documents: the README (its front door) and the documentation site's pages."""


def documentation() -> str:
    """Every document's text, one after the other: where a fact is documented, wherever it lives."""
    return "\n".join(path.read_text() for path in DOCUMENTS)
