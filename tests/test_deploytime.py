"""The deploy-time model: the plan's dependency graph scheduled as Pulumi runs it (everything in parallel as soon
as what it waits for is done), the critical path followed back, and the CLI's figures and picture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from pixelstream.tools.deploytime import DURATIONS, NAMED_DURATIONS, main, plan_graph, report, schedule

STREAM = "kubernetes:apps/v1:Deployment::stream-main"
# A synthetic plan: the cluster (100 s) and a slow side branch (300 s) both before the stream (50 s).
GRAPH = {
    "oci:Core/vcn:Vcn::net": [],
    "oci:ContainerEngine/cluster:Cluster::c": ["oci:Core/vcn:Vcn::net"],
    "oci:Identity/policy:Policy::side": ["oci:Core/vcn:Vcn::net"],
    "kubernetes:core/v1:Namespace::pixel": ["oci:ContainerEngine/cluster:Cluster::c"],
    STREAM: ["kubernetes:core/v1:Namespace::pixel", "oci:Identity/policy:Policy::side"],
    "kubernetes:helm.sh/v3:Release::late": [STREAM],
    "pixelstream:index:Network::net": [],
}
SECONDS = {
    "oci:Core/vcn:Vcn::net": 10,
    "oci:ContainerEngine/cluster:Cluster::c": 100,
    "oci:Identity/policy:Policy::side": 300,
    "kubernetes:core/v1:Namespace::pixel": 5,
    STREAM: 50,
    "kubernetes:helm.sh/v3:Release::late": 7,
}


def test_the_critical_path_is_the_longest_chain_of_waits() -> None:
    figures = report(schedule(GRAPH, SECONDS))
    # The side branch (10 + 300) outlasts the cluster and the namespace (10 + 100 + 5): the stream waits for it.
    assert figures["firstStreamSeconds"] == 10 + 300 + 50
    assert [s["resource"] for s in figures["chain"]] == [
        "oci:Core/vcn:Vcn::net",
        "oci:Identity/policy:Policy::side",
        STREAM,
    ]
    assert figures["upSeconds"] == 10 + 300 + 50 + 7
    # the unavoidable chain: the network, the cluster and the stream (no GPU pool in this plan)
    assert figures["unavoidableSeconds"] == 10 + 100 + 50
    # shorten the side branch and the cluster's chain is the critical one
    faster = report(schedule(GRAPH, {**SECONDS, "oci:Identity/policy:Policy::side": 20}))
    assert faster["firstStreamSeconds"] == 10 + 100 + 5 + 50
    assert "oci:ContainerEngine/cluster:Cluster::c" in [s["resource"] for s in faster["chain"]]


def test_a_cycle_or_a_plan_without_streams_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="a dependency cycle through"):
        schedule({"a::x": ["b::y"], "b::y": ["a::x"]})
    with pytest.raises(ValueError, match="the stack streams nothing"):
        report(schedule({"oci:Core/vcn:Vcn::net": []}))


@pytest.fixture(scope="module")
def prod() -> dict:
    return report(schedule(plan_graph("prod", ROOT)))


def test_prods_first_stream_waits_for_the_control_plane_a_node_pool_and_the_stream_itself(prod: dict) -> None:
    chain = [s["resource"] for s in prod["chain"]]
    assert chain[0] == "oci:Core/vcn:Vcn::pixelstream-prod-vcn" and chain[-1] == STREAM
    assert "oci:ContainerEngine/cluster:Cluster::pixelstream-prod" in chain
    assert any(r.startswith("oci:ContainerEngine/nodePool:NodePool::") for r in chain)
    pool = DURATIONS["oci:ContainerEngine/nodePool:NodePool"][0]
    stream = next(s for p, (s, _) in NAMED_DURATIONS.items() if p.startswith("kubernetes:apps/v1:Deployment"))
    cluster = DURATIONS["oci:ContainerEngine/cluster:Cluster"][0]
    assert prod["unavoidableSeconds"] == 10 + 10 + cluster + pool + stream, "vcn, workers subnet, cluster, GPU pool"
    assert prod["unavoidableSeconds"] <= prod["firstStreamSeconds"] <= prod["upSeconds"]


def test_the_cli_prints_json_draws_the_timeline_and_takes_overrides(tmp_path: Path, capsys, prod: dict) -> None:
    assert main(["--stack", "prod", "--json", "--out", str(tmp_path)]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert {"firstStreamSeconds", "upSeconds", "chain", "unavoidableSeconds"} <= set(figures)
    assert figures["firstStreamSeconds"] == prod["firstStreamSeconds"]
    assert (tmp_path / "deploytime.png").read_bytes().startswith(b"\x89PNG")
    slow = "oci:ContainerEngine/cluster:Cluster=900"
    assert main(["--stack", "prod", "--json", "--out", str(tmp_path), "--set", slow]) == 0
    cluster = DURATIONS["oci:ContainerEngine/cluster:Cluster"][0]
    assert json.loads(capsys.readouterr().out)["firstStreamSeconds"] == prod["firstStreamSeconds"] + 900 - cluster
    assert main(["--stack", "prod", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("stack prod: first ready stream ")
    assert main(["--stack", "prod", "--set", "cluster=soon"]) == 2
    assert "--set cluster=soon: expected TYPE=SECONDS" in capsys.readouterr().err
