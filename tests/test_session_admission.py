"""The admission policies that hold the session service: its Role may patch any pod of the namespace (RBAC
cannot name fields), one policy lets through only the deletion-cost annotations on stream pods; its Role may
scale the stream Deployments, the other holds each to its build's maxReplicas.

The planned policy's CEL is evaluated with cel-expr-python (Google's CEL runtime, cel-cpp): the expressions use
standard CEL only (has, in, all, ==, ?:), which cel-go in the API server evaluates the same way. The requests are
what the API server hands the policy for a merge patch: the pod before (`oldObject`) and after (`object`).
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from cel_expr_python import cel
from conftest import ROOT
from test_workload import SESSION_ROLE_RULES

from pixelstream.tools.offline import Plan, plan_stack
from pixelstream.workloads.pixel_streaming.session.broker import BUSY, FREE, RETIRING
from pixelstream.workloads.pixel_streaming.session.streams import cost_annotations

NS = "pixel"
SESSION_ACCOUNT = f"system:serviceaccount:{NS}:session"


@pytest.fixture(scope="module")
def dev() -> Plan:
    return plan_stack("dev", ROOT)[0]


def policy_objects(plan: Plan, name: str = "pixelstream-pixel-session-pod-patches") -> tuple[dict, dict]:
    manifests = plan.manifests()
    return (
        manifests[f"validatingadmissionpolicy.{name}.yaml"],
        manifests[f"validatingadmissionpolicybinding.{name}.yaml"],
    )


class Policy:
    """The API server's steps for one request: match conditions, then variables, then each validation."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.env = cel.NewEnv(
            variables={name: cel.Type.DYN for name in ("object", "oldObject", "request", "variables")}
        )
        self.conditions = [self.env.compile(c["expression"]) for c in spec["matchConditions"]]
        self.variables = [(v["name"], self.env.compile(v["expression"])) for v in spec["variables"]]
        self.validations = [(self.env.compile(v["expression"]), v["message"]) for v in spec["validations"]]

    def denials(self, user: str, old: dict[str, Any], new: dict[str, Any]) -> list[str] | None:
        """None when the policy does not apply to the request; else the messages of the failed validations."""
        data: dict[str, Any] = {"object": new, "oldObject": old, "request": {"userInfo": {"username": user}}}
        if not all(c.eval(data={**data, "variables": {}}).value() for c in self.conditions):
            return None
        variables: dict[str, Any] = {}
        for name, expression in self.variables:
            variables[name] = expression.eval(data={**data, "variables": variables}).plain_value()
        return [m for e, m in self.validations if e.eval(data={**data, "variables": variables}).value() is not True]


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies `application/merge-patch+json`."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge_patch(result.get(key) if isinstance(result.get(key), dict) else {}, value)
        else:
            result[key] = value
    return result


def running_pod(plan: Plan, deployment: str) -> dict[str, Any]:
    """A pod of the planned Deployment as the API server holds it: the template, plus what the ReplicaSet and
    the API server add."""
    template = plan.manifests()[f"{NS}.deployment.{deployment}.yaml"]["spec"]["template"]
    metadata = {
        **copy.deepcopy(template["metadata"]),
        "name": f"{deployment}-7d9c-x2x4q",
        "namespace": NS,
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{deployment}-7d9c",
                "uid": "3f1c",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    metadata["labels"] = {**metadata["labels"], "pod-template-hash": "7d9c"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": copy.deepcopy(template["spec"])}


@pytest.fixture(scope="module")
def policy(dev: Plan) -> Policy:
    return Policy(policy_objects(dev)[0]["spec"])


def annotated(pod: dict[str, Any], busy: bool | int) -> dict[str, Any]:
    return merge_patch(pod, {"metadata": {"annotations": cost_annotations(int(busy))}})


def test_the_policy_applies_to_the_session_services_pod_updates_in_its_namespace(dev: Plan) -> None:
    policy, binding = policy_objects(dev)
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["pods"]}
    ]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NS}
    }
    role = dev.manifests()[f"{NS}.role.session-streams.yaml"]
    assert role["rules"] == SESSION_ROLE_RULES, (
        "no subresource (pods/status, pods/ephemeralcontainers) escapes the policy's `pods` rule; one ConfigMap read"
    )
    version = dev.outputs["kubernetesVersion"].removeprefix("v")
    for document in (policy, binding):
        kubernetes_validate.validate(document, version, strict=True)


def test_the_session_service_may_mark_a_stream_busy_and_free_again(dev: Plan, policy: Policy) -> None:
    stream = running_pod(dev, "stream-main")
    busy = annotated(stream, BUSY)
    assert policy.denials(SESSION_ACCOUNT, stream, busy) == []
    assert policy.denials(SESSION_ACCOUNT, busy, annotated(busy, FREE)) == []
    retiring = annotated(busy, RETIRING)
    assert policy.denials(SESSION_ACCOUNT, busy, retiring) == []
    assert "cluster-autoscaler.kubernetes.io/safe-to-evict" not in retiring["metadata"]["annotations"]
    # Annotations others put there stay as they were.
    stream["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"}
    assert policy.denials(SESSION_ACCOUNT, stream, annotated(stream, True)) == []


def changed(pod: dict[str, Any], **patch: Any) -> dict[str, Any]:
    return merge_patch(pod, patch)


@pytest.mark.parametrize(
    ("what", "patch", "message"),
    [
        ("its own image", {"spec": {"containers": [{"name": "streamer", "image": "evil/miner:1"}]}}, "spec"),
        ("a longer grace", {"spec": {"terminationGracePeriodSeconds": 99999}}, "spec"),
        ("a toleration", {"spec": {"tolerations": [{"operator": "Exists"}]}}, "spec"),
        ("the stream label", {"metadata": {"labels": {"app.kubernetes.io/name": "gone"}}}, "labels"),
        ("a label of its own", {"metadata": {"labels": {"x": "y"}}}, "labels"),
        ("its owner", {"metadata": {"ownerReferences": []}}, "ownerReferences"),
        ("a finalizer", {"metadata": {"finalizers": ["example.com/hold"]}}, "finalizers"),
        ("another annotation", {"metadata": {"annotations": {"prometheus.io/scrape": "false"}}}, "annotations"),
    ],
)
def test_anything_else_on_a_stream_pod_is_denied(
    dev: Plan, policy: Policy, what: str, patch: dict, message: str
) -> None:
    stream = annotated(running_pod(dev, "stream-main"), True)
    denials = policy.denials(SESSION_ACCOUNT, stream, changed(stream, **patch))
    assert denials and message in " ".join(denials), what


def test_removing_or_rewriting_an_annotation_it_does_not_own_is_denied(dev: Plan, policy: Policy) -> None:
    stream = running_pod(dev, "stream-main")
    stream["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"}
    for value in (None, "2027-01-01T00:00:00Z"):
        patch = {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": value}}}
        assert "annotations" in " ".join(policy.denials(SESSION_ACCOUNT, stream, merge_patch(stream, patch)))


def test_only_stream_pods_may_be_marked(dev: Plan, policy: Policy) -> None:
    session = running_pod(dev, "session")
    assert policy.denials(SESSION_ACCOUNT, session, annotated(session, True)) == [
        "the session service may change stream pods only"
    ]


def test_other_users_are_not_held_by_this_policy(dev: Plan, policy: Policy) -> None:
    stream = running_pod(dev, "stream-main")
    swapped = changed(stream, spec={"containers": [{"name": "streamer", "image": "other:1"}]})
    for user in ("system:serviceaccount:pixel:turn", "system:serviceaccount:other:session", "system:node:gpu-1"):
        assert policy.denials(user, stream, swapped) is None
    assert policy.denials(SESSION_ACCOUNT, stream, swapped)


# -- scale writes ------------------------------------------------------------------------------------------------


def scale(deployment: str, replicas: int) -> dict[str, Any]:
    """The autoscaling/v1 Scale the API server hands the policy for a deployments/scale update."""
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": deployment, "namespace": NS},
        "spec": {"replicas": replicas},
    }


@pytest.fixture(scope="module")
def scale_policy(dev: Plan) -> Policy:
    return Policy(policy_objects(dev, "pixelstream-pixel-session-scale-bounds")[0]["spec"])


def test_the_scale_policy_applies_to_the_session_services_scale_writes(dev: Plan) -> None:
    policy, binding = policy_objects(dev, "pixelstream-pixel-session-scale-bounds")
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments/scale"]}
    ]
    assert binding["spec"]["validationActions"] == ["Deny"]
    version = dev.outputs["kubernetesVersion"].removeprefix("v")
    for document in (policy, binding):
        kubernetes_validate.validate(document, version, strict=True)


def test_the_session_service_may_scale_a_build_up_to_its_maximum_and_no_further(scale_policy: Policy) -> None:
    for replicas in (0, 1, 10):
        assert scale_policy.denials(SESSION_ACCOUNT, scale("stream-main", 3), scale("stream-main", replicas)) == []
    # a scale to 0 leaves out spec.replicas (the API server omits the zero value)
    to_zero = {**scale("stream-main", 0), "spec": {}}
    assert scale_policy.denials(SESSION_ACCOUNT, scale("stream-main", 3), to_zero) == []
    assert scale_policy.denials(SESSION_ACCOUNT, scale("stream-main", 3), scale("stream-main", 11)) == [
        "the session service may not scale a build beyond its maxReplicas"
    ]
    assert scale_policy.denials(SESSION_ACCOUNT, scale("session", 1), scale("session", 2)) == [
        "the session service may scale the stream Deployments only"
    ]
    # the operator's kubectl scale is not the session service's
    assert scale_policy.denials("kubernetes-admin", scale("stream-main", 3), scale("stream-main", 50)) is None
