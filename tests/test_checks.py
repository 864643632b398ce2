"""`make check`'s pieces: strict schema validation, the checkov allowlist, the workflow's schema, and the
example consumer project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from pixelstream.tools.checks import (
    CUSTOM_RESOURCE_SKIPS,
    checkov_findings,
    load_allowlist,
    unexpected_findings,
    validate_manifests,
)
from pixelstream.tools.offline import plan_stack
from pixelstream.tools.policies import run_policies


@pytest.fixture(scope="module")
def dev_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("build") / "dev"
    plan_stack("dev", ROOT)[0].write(directory)
    return directory


def copy_build(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_every_manifest_is_valid_in_strict_mode(dev_build: Path) -> None:
    problems, skipped = validate_manifests(dev_build, "1.34.2")
    assert problems == []
    assert [line.split(":")[0] for line in skipped] == [
        "clusterissuer.letsencrypt-prod.yaml",
        "clusterissuer.letsencrypt-staging.yaml",
    ]
    assert all(reason for reason in CUSTOM_RESOURCE_SKIPS.values())


def test_an_unknown_field_fails_validation(dev_build: Path, tmp_path: Path) -> None:
    build = copy_build(dev_build, tmp_path / "dev")
    path = build / "manifests" / "pixel.deployment.session.yaml"
    deployment = yaml.safe_load(path.read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {"limits": {"cpu": "1"}}  # typo of resources
    path.write_text(yaml.safe_dump(deployment))
    problems, _ = validate_manifests(build, "1.34.2")
    assert problems == [
        "pixel.deployment.session.yaml: spec.template.spec.containers.0: "
        "Additional properties are not allowed ('resource' was unexpected)"
    ]


def test_a_custom_resource_without_schema_or_reason_fails(dev_build: Path, tmp_path: Path) -> None:
    build = copy_build(dev_build, tmp_path / "dev")
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {},
    }
    (build / "manifests" / "monitoring.servicemonitor.x.yaml").write_text(yaml.safe_dump(monitor))
    problems, _ = validate_manifests(build, "1.34.2")
    assert problems == [
        "monitoring.servicemonitor.x.yaml: no schema for ServiceMonitor monitoring.coreos.com/v1 in Kubernetes 1.34.2, "
        "and no listed reason to skip it"
    ]


def test_make_check_command_fails_on_a_container_without_limits(dev_build: Path, tmp_path: Path) -> None:
    import json

    build = copy_build(dev_build, tmp_path / "dev")
    document = json.loads((build / "resources.json").read_text())
    sessions = next(
        r for r in document["resources"] if r["type"] == "kubernetes:apps/v1:Deployment" and r["name"] == "session"
    )
    del sessions["inputs"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    (build / "resources.json").write_text(json.dumps(document))
    result = subprocess.run(
        [sys.executable, "-m", "pixelstream.tools.checks", "policies", str(build)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert (
        "[containers-have-requests-and-limits] kubernetes:apps/v1:Deployment::session: container session has no limits"
        in result.stderr
    )
    clean = subprocess.run(
        [sys.executable, "-m", "pixelstream.tools.checks", "policies", str(dev_build)], capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stderr


def test_every_checkov_skip_has_a_one_line_reason(tmp_path: Path) -> None:
    entries = load_allowlist(ROOT / "checkov-allowlist.yaml")
    assert entries and all(e.reason and "\n" not in e.reason for e in entries)
    bad = tmp_path / "allowlist.yaml"
    bad.write_text(yaml.safe_dump([{"check": "CKV_K8S_19", "resources": ["DaemonSet.*.turn"], "reason": ""}]))
    with pytest.raises(ValueError, match="needs a one-line reason"):
        load_allowlist(bad)


def test_checkov_findings_outside_the_allowlist_fail() -> None:
    allowlist = load_allowlist(ROOT / "checkov-allowlist.yaml")
    report = {
        "check_type": "kubernetes",
        "results": {
            "failed_checks": [
                {"check_id": "CKV_K8S_19", "resource": "DaemonSet.pixel.turn", "check_name": "host network"},
                {"check_id": "CKV_K8S_19", "resource": "Deployment.pixel.session", "check_name": "host network"},
                {"check_id": "CKV_K8S_20", "resource": "Deployment.pixel.stream", "check_name": "privilege escalation"},
            ]
        },
    }
    assert unexpected_findings(checkov_findings(report), allowlist) == [
        "CKV_K8S_19 (host network) fails for Deployment.pixel.session",
        "CKV_K8S_20 (privilege escalation) fails for Deployment.pixel.stream",
    ]


def schema_check(schema: str, path: Path) -> subprocess.CompletedProcess:
    checker = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(checker), "--builtin-schema", schema, str(path)], capture_output=True, text=True)


def test_the_workflow_and_its_action_pass_their_schemas(tmp_path: Path) -> None:
    workflow = ROOT / ".github" / "workflows" / "pulumi.yml"
    assert schema_check("vendor.github-workflows", workflow).returncode == 0
    assert schema_check("vendor.github-actions", ROOT / ".github" / "actions" / "setup" / "action.yml").returncode == 0
    document = yaml.safe_load(workflow.read_text())
    preview = document["jobs"]["preview-pull-request"]
    action = next(step for step in preview["steps"] if str(step.get("uses", "")).startswith("pulumi/actions@"))
    assert action["with"]["command"] == "preview" and action["with"]["comment-on-pr"] is True
    assert action["with"]["policyPacks"] == "policy"
    assert preview["permissions"]["pull-requests"] == "write"
    main_preview = next(
        step for step in document["jobs"]["preview"]["steps"] if str(step.get("uses", "")).startswith("pulumi/actions@")
    )
    assert main_preview["with"]["comment-on-summary"] is True, "prod's approvers read the preview in the summary"
    deploy = next(
        step for step in document["jobs"]["deploy"]["steps"] if str(step.get("uses", "")).startswith("pulumi/actions@")
    )
    assert deploy["with"]["command"] == "up"
    assert any("make test" in step.get("run", "") for step in document["jobs"]["test"]["steps"])
    broken = tmp_path / "broken.yml"
    del document["jobs"]["test"]["runs-on"]
    broken.write_text(yaml.safe_dump(document))
    assert schema_check("vendor.github-workflows", broken).returncode != 0


def test_the_example_consumer_plans_offline_and_passes_the_policies() -> None:
    plan, notes = plan_stack("example", ROOT / "examples" / "gpu-pool")
    assert notes == []
    pool = plan.named("oci:ContainerEngine/nodePool:NodePool", "streamers").inputs
    assert pool["nodeShape"] == "VM.GPU.A10.2"
    assert {"key": "app.pixel/gpu", "value": "true"} in pool["initialNodeLabels"]
    assert plan.outputs["autoscalerNodes"] == "1:4:ocid1.nodepool.offline..streamers"
    assert plan.named("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin").provider
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    assert run_policies(resources, plan.outputs) == []


def test_the_whole_platform_example_plans_offline_under_its_own_namespace() -> None:
    plan, notes = plan_stack("example", ROOT / "examples" / "whole-platform")
    assert notes == []
    platform = plan.named("pixelstream:index:Platform", "media")
    assert plan.named("pixelstream:index:Network", "media").parent == platform.urn
    assert plan.named("oci:ContainerEngine/cluster:Cluster", "media").inputs["endpointConfig"]["isPublicIpEnabled"]
    assert plan.outputs == {"url": "https://play.example.com/", "kubeconfig": "[secret]"}
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in plan.resources]
    assert run_policies(resources, plan.outputs) == []
