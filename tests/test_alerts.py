"""The platform's alerts as planned, run by `promtool test rules`: each fires on the series it is about and stays
quiet on the look-alikes, and the thresholds come from the stack config."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT
from promtool import run
from test_addons import plan_with

from pixelstream.constants import COTURN_CONTAINER, SESSION_SERVICE, TURN_DAEMONSET
from pixelstream.tools.offline import Plan, plan_stack

# The dev stack's one build, `main`: its Deployment; a canary beside it.
STREAM, CANARY = "stream-main", "stream-canary"

pytestmark = pytest.mark.slow

KSM = 'job="kube-state-metrics",namespace="pixel"'
SESSIONS = 'job="kubernetes-service-endpoints",namespace="pixel",service="session"'
MAIN, CANARY_BUILD = f'{SESSIONS},build="main"', f'{SESSIONS},build="canary"'
TURN = f'{KSM},daemonset="{TURN_DAEMONSET}"'
GPU_A = 'gpu="0",UUID="GPU-a",pci_bus_id="00000000:00:04.0",device="nvidia0",modelName="NVIDIA A10",Hostname="gpu-a"'
GPU_B = GPU_A.replace("GPU-a", "GPU-b").replace('Hostname="gpu-a"', 'Hostname="gpu-b"')
BASE = {"platform": "pixelstream"}


def groups_of(plan: Plan) -> list[dict[str, Any]]:
    values = plan.helm_releases()["kube-prometheus-stack.yaml"]["values"]
    return values["additionalPrometheusRulesMap"]["pixelstream"]["groups"]


@pytest.fixture(scope="module")
def dev() -> Plan:
    return plan_stack("dev", ROOT)[0]


def expand(template: str, labels: dict[str, str], value: float) -> str:
    """The annotation Prometheus renders from `template` ($labels and $value only, as our rules use)."""
    text = template.replace("{{ $value }}", f"{value:g}")
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m[1], ""), text)


def alert_test(
    groups: list[dict[str, Any]],
    directory: Path,
    alert: str,
    series: dict[str, str],
    at: str,
    firing: list[tuple[dict[str, str], float]],
) -> str:
    """promtool's verdict on `alert` at `at` over `series`, expecting exactly `firing` (labels, value)."""
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    rule = rules[alert]
    (directory / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    expected = []
    for labels, value in firing:
        every = {**labels, **rule["labels"]}
        annotations = {k: expand(v, {**labels, "alertname": alert}, value) for k, v in rule["annotations"].items()}
        expected.append({"exp_labels": every, "exp_annotations": annotations})
    document = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
            }
        ],
    }
    path = directory / "alerts-test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    result = run("test", "rules", str(path))
    return "SUCCESS" if result.returncode == 0 else result.stdout + result.stderr


# (alert, series, evaluation time, what must fire) for the default thresholds.
FIRES = {
    "PixelStreamPlayersQueued": (
        {f"pixelstream_session_queue{{{SESSIONS}}}": "3x20"},
        "12m",
        [({"namespace": "pixel"}, 3)],
    ),
    "PixelStreamNoReadyStream": (
        {f'kube_deployment_status_replicas_available{{{KSM},deployment="{STREAM}"}}': "0x10"},
        "7m",
        [({"namespace": "pixel"}, 0)],
    ),
    "PixelStreamBuildNotReady": (
        {
            f'kube_deployment_status_replicas_unavailable{{{KSM},deployment="{CANARY}"}}': "2x20",
            f'kube_deployment_status_replicas_unavailable{{{KSM},deployment="{STREAM}"}}': "0x20",
        },
        "16m",
        [({"namespace": "pixel", "deployment": CANARY}, 2)],
    ),
    "PixelStreamAutoscalerAtMaximum": (
        {
            f"pixelstream_session_streams_wanted{{{MAIN}}}": "10x20",
            f"pixelstream_session_streams_max{{{MAIN}}}": "10x20",
            f"pixelstream_session_streams_wanted{{{CANARY_BUILD}}}": "2x20",
            f"pixelstream_session_streams_max{{{CANARY_BUILD}}}": "3x20",
        },
        "16m",
        [({"namespace": "pixel", "build": "main"}, 10)],
    ),
    "PixelStreamScaleInHeld": (
        {
            f"pixelstream_session_scale_in_held{{{MAIN}}}": "1x40",
            f"pixelstream_session_scale_in_held{{{CANARY_BUILD}}}": "0x40",
        },
        "31m",
        [({"namespace": "pixel", "build": "main"}, 1)],
    ),
    "PixelStreamTurnPodsNotReady": (
        {
            f"kube_daemonset_status_number_ready{{{TURN}}}": "1x10",
            f"kube_daemonset_status_desired_number_scheduled{{{TURN}}}": "2x10",
        },
        "6m",
        [({"namespace": "pixel", "daemonset": TURN_DAEMONSET}, 1)],
    ),
    "PixelStreamSessionServiceDown": (
        {f'kube_deployment_status_replicas_available{{{KSM},deployment="{SESSION_SERVICE}"}}': "0x5"},
        "3m",
        [({"namespace": "pixel"}, 0)],
    ),
    "PixelStreamGpuXidError": (
        {f"DCGM_FI_DEV_XID_ERRORS{{{GPU_A}}}": "0 0 79 79", f"DCGM_FI_DEV_XID_ERRORS{{{GPU_B}}}": "0x3"},
        "3m",
        [({"Hostname": "gpu-a", "gpu": "0"}, 79)],
    ),
    "PixelStreamGpuTemperatureHigh": (
        {f"DCGM_FI_DEV_GPU_TEMP{{{GPU_A}}}": "90x10", f"DCGM_FI_DEV_GPU_TEMP{{{GPU_B}}}": "70x10"},
        "6m",
        [({"Hostname": "gpu-a", "gpu": "0"}, 90)],
    ),
}

# (alert, series, evaluation time) that must not fire: below the threshold, not for long enough, or not ours.
QUIET = {
    "PixelStreamPlayersQueued": (
        {
            f"pixelstream_session_queue{{{SESSIONS}}}": "3x7 0x13",
            f"pixelstream_session_queue{{{SESSIONS.replace('pixel', 'staging')}}}": "5x20",
        },
        "12m",
    ),
    "PixelStreamNoReadyStream": (
        {
            f'kube_deployment_status_replicas_available{{{KSM},deployment="{STREAM}"}}': "0x10",
            f'kube_deployment_status_replicas_available{{{KSM},deployment="{CANARY}"}}': "1x10",
            f'kube_deployment_status_replicas_available{{{KSM},deployment="player"}}': "0x10",
        },
        "7m",
    ),
    "PixelStreamBuildNotReady": (
        {
            # A rollout's new pods, ready within the start-up time; another Deployment's unavailable pods.
            f'kube_deployment_status_replicas_unavailable{{{KSM},deployment="{CANARY}"}}': "2x10 0x10",
            f'kube_deployment_status_replicas_unavailable{{{KSM},deployment="session"}}': "1x20",
        },
        "16m",
    ),
    "PixelStreamAutoscalerAtMaximum": (
        {
            # at its maximum for less than the threshold; another namespace's build at its maximum for long
            f"pixelstream_session_streams_wanted{{{MAIN}}}": "8x5 10x15",
            f"pixelstream_session_streams_max{{{MAIN}}}": "10x20",
            f"pixelstream_session_streams_wanted{{{MAIN.replace('pixel', 'staging')}}}": "10x20",
            f"pixelstream_session_streams_max{{{MAIN.replace('pixel', 'staging')}}}": "10x20",
        },
        "16m",
    ),
    "PixelStreamScaleInHeld": (
        {
            # held through a scale-in that took minutes, then free; another namespace's, held long
            f"pixelstream_session_scale_in_held{{{MAIN}}}": "1x20 0x20",
            f"pixelstream_session_scale_in_held{{{MAIN.replace('pixel', 'staging')}}}": "1x40",
        },
        "31m",
    ),
    "PixelStreamTurnPodsNotReady": (
        {
            f"kube_daemonset_status_number_ready{{{TURN}}}": "2x10",
            f"kube_daemonset_status_desired_number_scheduled{{{TURN}}}": "2x10",
            f'kube_daemonset_status_number_ready{{{KSM},daemonset="other"}}': "0x10",
            f'kube_daemonset_status_desired_number_scheduled{{{KSM},daemonset="other"}}': "2x10",
        },
        "6m",
    ),
    "PixelStreamSessionServiceDown": (
        {f'kube_deployment_status_replicas_available{{{KSM},deployment="{SESSION_SERVICE}"}}': "0 0 1 1 1 1"},
        "3m",
    ),
    "PixelStreamGpuXidError": (
        {f"DCGM_FI_DEV_XID_ERRORS{{{GPU_A}}}": "0x3", f"DCGM_FI_DEV_XID_ERRORS{{{GPU_B}}}": "0x3"},
        "3m",
    ),
    "PixelStreamGpuTemperatureHigh": (
        {f"DCGM_FI_DEV_GPU_TEMP{{{GPU_A}}}": "90x3 80x7", f"DCGM_FI_DEV_GPU_TEMP{{{GPU_B}}}": "85x10"},
        "6m",
    ),
}


def test_every_alert_has_a_firing_and_a_quiet_case(dev: Plan) -> None:
    planned = {r["alert"] for g in groups_of(dev) for r in g["rules"]}
    assert planned == set(FIRES) == set(QUIET)


def test_the_planned_rules_pass_promtool_check(dev: Plan, tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups_of(dev)}))
    result = run("check", "rules", str(path))
    assert result.returncode == 0 and "9 rules found" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("alert", FIRES)
def test_the_alert_fires_on_its_series(dev: Plan, alert: str, tmp_path: Path) -> None:
    series, at, firing = FIRES[alert]
    assert alert_test(groups_of(dev), tmp_path, alert, series, at, firing) == "SUCCESS"


@pytest.mark.parametrize("alert", QUIET)
def test_the_alert_stays_quiet_on_look_alikes(dev: Plan, alert: str, tmp_path: Path) -> None:
    series, at = QUIET[alert]
    assert alert_test(groups_of(dev), tmp_path, alert, series, at, []) == "SUCCESS"
    # The same check can fail: what fires is seen.
    fires_series, fires_at, _ = FIRES[alert]
    assert alert_test(groups_of(dev), tmp_path, alert, fires_series, fires_at, []) != "SUCCESS"


def test_thresholds_come_from_the_stack_config(tmp_path: Path) -> None:
    plan = plan_with(
        tmp_path,
        addons={"monitoring": {"alerts": {"gpuTemperatureCelsius": 95, "queuedPlayers": 5, "queuedMinutes": 3}}},
    )
    groups = groups_of(plan)
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert rules["PixelStreamPlayersQueued"]["for"] == "3m"
    hot, at, _ = FIRES["PixelStreamGpuTemperatureHigh"]
    assert alert_test(groups, tmp_path, "PixelStreamGpuTemperatureHigh", hot, at, []) == "SUCCESS", "90 < 95 °C"
    queue = {f"pixelstream_session_queue{{{SESSIONS}}}": "3x5 6x5"}
    assert alert_test(groups, tmp_path, "PixelStreamPlayersQueued", queue, "5m", []) == "SUCCESS", "3 <= 5 players"
    fired = [({"namespace": "pixel"}, 6)]
    assert alert_test(groups, tmp_path, "PixelStreamPlayersQueued", queue, "9m", fired) == "SUCCESS", "6 for 3 min"


def test_the_alerts_name_the_workloads_objects(dev: Plan) -> None:
    manifests = dev.manifests()
    assert f"pixel.deployment.{STREAM}.yaml" in manifests
    assert f"pixel.deployment.{SESSION_SERVICE}.yaml" in manifests
    builds = json.loads(manifests["pixel.configmap.session-builds.yaml"]["data"]["builds.json"])["builds"]
    assert [b["name"] for b in builds] == ["main"], "the session service's series carry build=main"
    daemonset = manifests[f"pixel.daemonset.{TURN_DAEMONSET}.yaml"]
    assert COTURN_CONTAINER in [c["name"] for c in daemonset["spec"]["template"]["spec"]["containers"]]


def test_without_the_workload_only_the_gpu_alerts_remain(tmp_path: Path) -> None:
    plan = plan_with(tmp_path, streaming={"enabled": False})
    names = {r["alert"] for g in groups_of(plan) for r in g["rules"]}
    assert names == {"PixelStreamGpuXidError", "PixelStreamGpuTemperatureHigh"}
