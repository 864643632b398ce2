"""Queue-driven GPU jobs in the offline plan: the engines (Strimzi's Kafka, KEDA) pinned from the chart table, the
Kafka custom resources sized from config, one ScaledJob per job type with its trigger from config, GPU placement,
the job contract's environment, minimal RBAC, and the results bucket with its access."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from test_addons import plan_with, releases

from pixelstream.addons.charts import CHARTS
from pixelstream.config import ConfigError
from pixelstream.tools.offline import Plan, plan_stack, run_offline
from pixelstream.workloads.gpu_jobs.config import CONTRACT_ENV

JOBS_ON_OKE = {
    "enabled": True,
    "namespace": "render-jobs",
    "kafka": {"strimzi": {"controllers": {"replicas": 1}, "brokers": {"replicas": 1, "storageGbs": 20}}},
    "results": {"bucket": "render-results", "retentionDays": 7},
    "types": {
        "render": {
            "image": "registry.example/render:2.1.0",
            "topic": "render.requests",
            "resultsTopic": "render.done",
            "consumerGroup": "render-workers",
            "lagThreshold": 2,
            "partitions": 12,
            "maxReplicas": 8,
            "args": ["-batch"],
            "env": {"QUALITY": "high"},
        }
    },
}
IAM_POLICY = "oci:Identity/policy:Policy"


@pytest.fixture(scope="module")
def onprem() -> Plan:
    return plan_stack("onprem", ROOT)[0]


@pytest.fixture(scope="module")
def oke(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """prod (time-sliced GPUs) with jobs: workload identity, an offscreen job type."""
    return plan_with(tmp_path_factory.mktemp("oke-jobs"), "prod", jobs=JOBS_ON_OKE)


def custom(plan: Plan, kind: str) -> dict[str, dict]:
    return {m["metadata"]["name"]: m for m in plan.manifests().values() if m["kind"] == kind}


def test_the_engines_come_pinned_from_the_chart_table(onprem: Plan) -> None:
    installed = releases(onprem)
    for chart, namespace in (("strimzi-kafka-operator", "strimzi"), ("keda", "keda")):
        release = installed[chart]
        assert (release["version"], release["repository"]) == (CHARTS[chart].version, CHARTS[chart].repository)
        assert release["namespace"] == namespace
    assert installed["strimzi-kafka-operator"]["values"]["watchNamespaces"] == ["gpu-jobs"]
    keda = installed["keda"]["values"]
    assert keda["watchNamespace"] == "gpu-jobs" and keda["metricsServer"] == {"enabled": False}
    assert keda["permissions"]["operator"]["restrict"]["secret"] is True


def test_jobs_are_off_unless_enabled() -> None:
    dev = plan_stack("dev", ROOT)[0]
    assert not {"keda", "strimzi-kafka-operator"} & set(releases(dev))
    assert not [r for r in dev.resources if r.type.startswith("oci:ObjectStorage")]


def test_kafka_runs_in_kraft_node_pools_sized_from_config(onprem: Plan, oke: Plan) -> None:
    pools = custom(onprem, "KafkaNodePool")
    assert {name: (p["spec"]["roles"], p["spec"]["replicas"]) for name, p in pools.items()} == {
        "controllers": (["controller"], 3),
        "brokers": (["broker"], 3),
    }
    [volume] = pools["brokers"]["spec"]["storage"]["volumes"]
    assert (volume["size"], volume["class"], volume["type"]) == ("50Gi", "local-path", "persistent-claim")
    assert pools["controllers"]["spec"]["storage"]["volumes"][0]["size"] == "5Gi"
    for pool in pools.values():
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "jobs"
    kafka = custom(onprem, "Kafka")["jobs"]["spec"]["kafka"]
    assert kafka["config"]["min.insync.replicas"] == 2 and kafka["config"]["default.replication.factor"] == 3
    assert kafka["config"]["auto.create.topics.enable"] is False
    listeners = {listener["name"]: listener for listener in kafka["listeners"]}
    assert {n: (lst["port"], lst["type"], lst["tls"]) for n, lst in listeners.items()} == {
        "tls": (9193, "internal", True),
        "scaler": (9094, "internal", False),
    }
    assert all(lst["authentication"] == {"type": "scram-sha-512"} for lst in listeners.values()), "no anonymous client"
    assert kafka["authorization"] == {"type": "simple"}
    keda = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    assert listeners["scaler"]["networkPolicyPeers"] == [keda], "KEDA alone on the listener without TLS"
    assert keda not in listeners["tls"]["networkPolicyPeers"]
    single = custom(oke, "Kafka")["jobs"]["spec"]["kafka"]["config"]
    assert (single["default.replication.factor"], single["min.insync.replicas"]) == (1, 1)
    assert custom(oke, "KafkaNodePool")["brokers"]["spec"]["storage"]["volumes"][0]["class"] == "oci-bv"


def test_topics_come_from_the_job_types(onprem: Plan, oke: Plan) -> None:
    assert {name: t["spec"]["partitions"] for name, t in custom(onprem, "KafkaTopic").items()} == {
        "kart3d-tasks": 6,
        "kart3d-results": 6,
    }
    assert set(custom(oke, "KafkaTopic")) == {"render.requests", "render.done"}
    assert onprem.outputs["jobsTopics"] == {
        "kart3d": {"tasks": "kart3d-tasks", "results": "kart3d-results", "consumerGroup": "kart3d-jobs"}
    }


def test_the_trigger_metadata_comes_from_config(onprem: Plan, oke: Plan) -> None:
    job = custom(oke, "ScaledJob")["render"]["spec"]
    assert job["triggers"] == [
        {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": "jobs-kafka-bootstrap.render-jobs.svc:9094",
                "sasl": "scram_sha512",
                "tls": "disable",
                "consumerGroup": "render-workers",
                "topic": "render.requests",
                "lagThreshold": "2",
                "offsetResetPolicy": "earliest",
                "allowIdleConsumers": "false",
            },
            "authenticationRef": {"name": "render-jobs-kafka-scaler", "kind": "ClusterTriggerAuthentication"},
        }
    ]
    assert (job["maxReplicaCount"], job["scalingStrategy"]) == (8, {"strategy": "default"})
    onprem_job = custom(onprem, "ScaledJob")["kart3d"]["spec"]
    assert onprem_job["triggers"][0]["metadata"]["lagThreshold"] == "1", "one Job per pending message"
    assert (onprem_job["maxReplicaCount"], onprem_job["jobTargetRef"]["activeDeadlineSeconds"]) == (2, 1800)


def _pod(plan: Plan, job: str) -> dict:
    return custom(plan, "ScaledJob")[job]["spec"]["jobTargetRef"]["template"]["spec"]


def test_a_job_runs_on_a_gpu_with_graphics_and_video(onprem: Plan, oke: Plan) -> None:
    for plan, job, resource in ((onprem, "kart3d", "nvidia.com/gpu"), (oke, "render", "nvidia.com/gpu.shared")):
        pod = _pod(plan, job)
        [container] = pod["containers"]
        assert container["resources"]["requests"][resource] == container["resources"]["limits"][resource] == "1"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["NVIDIA_DRIVER_CAPABILITIES"] == "graphics,video,compute,utility"
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["restartPolicy"] == "Never"
    terms = _pod(oke, "render")["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == "app.pixel/gpu"


def test_a_virtual_display_is_a_native_sidecar_and_offscreen_is_a_flag(onprem: Plan, oke: Plan) -> None:
    pod = _pod(onprem, "kart3d")
    [display] = pod["initContainers"]
    assert display["restartPolicy"] == "Always" and display["command"][:2] == ["Xvfb", ":99"]
    assert display["image"] == pod["containers"][0]["image"], "the job's own image by default"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["DISPLAY"] == ":99" and "args" not in pod["containers"][0]
    offscreen = _pod(oke, "render")
    assert offscreen["initContainers"] == []
    assert offscreen["containers"][0]["args"] == ["-batch", "-RenderOffScreen"]
    assert "DISPLAY" not in {e["name"] for e in offscreen["containers"][0]["env"]}


def test_the_job_contract_environment(onprem: Plan, oke: Plan) -> None:
    env = {e["name"]: e for e in _pod(oke, "render")["containers"][0]["env"]}
    assert set(CONTRACT_ENV) - {"DISPLAY"} <= set(env) and env["QUALITY"]["value"] == "high"
    assert env["RESULTS_ACCESS"]["value"] == "workloadIdentity"
    assert (env["RESULTS_BUCKET"]["value"], env["RESULTS_PREFIX"]["value"]) == ("render-results", "results/render/")
    assert env["RESULTS_NAMESPACE"]["value"] == "offlinenamespace" and env["OCI_REGION"]["value"] == "us-ashburn-1"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    par = {e["name"]: e.get("value") for e in _pod(onprem, "kart3d")["containers"][0]["env"]}
    assert par["RESULTS_ACCESS"] == "preAuthenticatedRequest"


def test_a_secret_variable_reaches_the_job_by_reference_and_never_as_a_value(tmp_path: Path) -> None:
    from pixelstream.tools.offline import SECRET_PLACEHOLDER

    render = {**JOBS_ON_OKE["types"]["render"], "env": {"QUALITY": "high", "API_TOKEN": {"secure": "v1:token"}}}
    plan = plan_with(tmp_path, "prod", jobs={**JOBS_ON_OKE, "types": {"render": render}})
    env = {e["name"]: e for e in _pod(plan, "render")["containers"][0]["env"]}
    assert env["API_TOKEN"] == {
        "name": "API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "render-env", "key": "API_TOKEN"}},
    }
    assert env["QUALITY"] == {"name": "QUALITY", "value": "high"}, "a plain variable stays a value"
    secret = plan.manifests()["render-jobs.secret.render-env.yaml"]
    assert secret["stringData"] == {"API_TOKEN": "[secret]"}
    plan.write(tmp_path / "build")
    written = "".join(p.read_text() for p in (tmp_path / "build").rglob("*") if p.is_file())
    assert SECRET_PLACEHOLDER not in written


def test_rbac_is_namespaced_and_minimal(onprem: Plan, oke: Plan) -> None:
    for plan in (onprem, oke):
        jobs = plan.named("pixelstream:index:GpuJobs", "gpu-jobs")
        below = _descendants(plan, jobs.urn)
        kinds = {r.type.rsplit(":", 1)[-1] for r in below if r.type.startswith("kubernetes:")}
        assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}, kinds
        accounts = [m for m in plan.manifests().values() if m["kind"] == "ServiceAccount"]
        accounts = [a for a in accounts if a["metadata"]["name"].startswith("gpu-job")]
        assert [a["metadata"]["name"] for a in accounts] == [f"gpu-job-{_only_type(plan)}"], "one per job type"
        assert accounts[0]["automountServiceAccountToken"] is False
        assert _pod(plan, _only_type(plan))["serviceAccountName"] == f"gpu-job-{_only_type(plan)}"
    # No token in a pod unless the job writes through workload identity, and then only in the job's container.
    assert "kube-api-access" not in {v["name"] for v in _pod(onprem, "kart3d")["volumes"]}
    pod = _pod(oke, "render")
    assert pod["automountServiceAccountToken"] is False
    assert "kube-api-access" in {v["name"] for v in pod["volumes"]}
    assert "kube-api-access" in {m["name"] for m in pod["containers"][0]["volumeMounts"]}


def _only_type(plan: Plan) -> str:
    [name] = custom(plan, "ScaledJob")
    return name


def _descendants(plan: Plan, urn: str) -> list:
    children = [r for r in plan.resources if r.parent == urn]
    return children + [d for c in children for d in _descendants(plan, c.urn)]


def test_results_bucket_expires_results_and_grants_only_object_creation(onprem: Plan, oke: Plan) -> None:
    bucket = onprem.named("oci:ObjectStorage/bucket:Bucket", "gpu-jobs-results-bucket").inputs
    assert (bucket["name"], bucket["accessType"]) == ("pixelstream-onprem-job-results", "NoPublicAccess")
    lifecycle = onprem.named(
        "oci:ObjectStorage/objectLifecyclePolicy:ObjectLifecyclePolicy", "gpu-jobs-results-lifecycle"
    ).inputs
    expire = lifecycle["rules"][0]
    assert (expire["action"], expire["timeAmount"], expire["timeUnit"]) == ("DELETE", "14", "DAYS")
    assert expire["objectNameFilter"]["inclusionPrefixes"] == ["results/"]
    [policy] = [p.inputs for p in onprem.of_type(IAM_POLICY)]
    assert policy["statements"] == [
        "Allow service objectstorage-us-ashburn-1 to manage object-family in compartment id "
        "ocid1.compartment.oc1..offlineplan where target.bucket.name = 'pixelstream-onprem-job-results'"
    ]
    [policy] = [p.inputs for p in oke.of_type(IAM_POLICY) if p.name == "gpu-jobs-results-policy"]
    assert policy["statements"][1] == (
        "Allow any-user to manage objects in compartment id ocid1.compartment.oc1..offlineplan where ALL "
        "{request.principal.type = 'workload', request.principal.namespace = 'render-jobs', "
        "request.principal.service_account = 'gpu-job-render', "
        "request.principal.cluster_id = 'ocid1.cluster.offline..pixelstream-prod', "
        "target.bucket.name = 'render-results', target.object.name = /results/render/*/, "
        "request.permission = 'OBJECT_CREATE'}"
    )
    assert len(policy["statements"]) == 2, "one statement per job type, each its own prefix"


EXTERNAL_KAFKA = {
    "mode": "external",
    "bootstrapServers": "kafka-1.corp.example:9093,kafka-2.corp.example:9093",
    "username": "gpu-jobs",
    "password": {"secure": "v1:kafka-password"},
    "caCertificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}


def test_an_external_kafka_replaces_strimzi_and_is_signed_in_to(tmp_path: Path) -> None:
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.onprem.yaml").read_text())
    document["config"]["pixelstream:jobs"]["kafka"] = EXTERNAL_KAFKA
    stack_file = tmp_path / "Pulumi.onprem.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    plan = plan_stack("onprem", ROOT, stack_file)[0]
    servers = EXTERNAL_KAFKA["bootstrapServers"]
    assert "strimzi-kafka-operator" not in releases(plan) and "keda" in releases(plan)
    assert not custom(plan, "Kafka") and not custom(plan, "KafkaTopic") and not custom(plan, "KafkaUser")
    [trigger] = custom(plan, "ScaledJob")["kart3d"]["spec"]["triggers"]
    assert (trigger["metadata"]["bootstrapServers"], trigger["metadata"]["tls"]) == (servers, "enable")
    manifests = plan.manifests()
    # A Secret with one secret value is secret whole in Pulumi's state: every value shows as [secret].
    assert manifests["gpu-jobs.secret.kafka-credentials.yaml"]["stringData"] == {
        "username": "[secret]",
        "password": "[secret]",
    }
    scaler = manifests["keda.secret.gpu-jobs-kafka-scaler.yaml"]["stringData"]
    assert set(scaler) == {"username", "password", "ca"} and scaler["password"] == "[secret]"
    env = {e["name"]: e for e in _pod(plan, "kart3d")["containers"][0]["env"]}
    assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["KAFKA_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "kafka-credentials", "key": "password"}}
    assert plan.outputs["jobsBootstrapServers"] == servers
    assert "jobsProducerPassword" not in plan.outputs, "you hold that Kafka's credentials"


def test_every_client_signs_in_with_only_its_own_acls(oke: Plan) -> None:
    users = {name: u["spec"] for name, u in custom(oke, "KafkaUser").items()}
    assert set(users) == {"job-render", "producer", "keda"}

    def acls(user: str) -> set[tuple[str, str, str, tuple[str, ...]]]:
        return {
            (a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], tuple(a["operations"]))
            for a in users[user]["authorization"]["acls"]
        }

    assert acls("job-render") == {
        ("topic", "render.requests", "literal", ("Read", "Describe")),
        ("group", "render-workers", "literal", ("Read", "Describe")),
        ("topic", "render.done", "literal", ("Write", "Describe")),
    }
    assert acls("producer") == {
        ("topic", "render.requests", "literal", ("Write", "Describe")),
        ("topic", "render.done", "literal", ("Read", "Describe")),
        ("group", "producer", "prefix", ("Read", "Describe")),
        ("transactionalId", "producer", "prefix", ("Write", "Describe")),
    }
    assert acls("keda") == {
        ("topic", "render.requests", "literal", ("Describe",)),
        ("group", "render-workers", "literal", ("Describe",)),
    }
    manifests = oke.manifests()
    # No client can fill the brokers for the others; the operator's own copies of the passwords get a prefix.
    quotas = {"producerByteRate": 1_048_576, "consumerByteRate": 4_194_304, "requestPercentage": 25}
    assert all(spec["quotas"] == quotas for spec in users.values())
    operator = custom(oke, "Kafka")["jobs"]["spec"]["entityOperator"]["userOperator"]
    assert operator["secretPrefix"] == "kafka-user-"
    for topic in custom(oke, "KafkaTopic").values():
        assert (topic["spec"]["config"]["retention.bytes"], topic["spec"]["config"]["max.message.bytes"]) == (
            1_073_741_824,
            1_048_576,
        )
    for user, spec in users.items():
        secret = f"{user}-kafka-credentials"
        assert spec["authentication"] == {
            "type": "scram-sha-512",
            "password": {"valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
        }
        data = manifests[f"render-jobs.secret.{secret}.yaml"]["stringData"]
        assert data == {"username": "[secret]", "password": "[secret]"}
    env = {e["name"]: e for e in _pod(oke, "render")["containers"][0]["env"]}
    assert env["KAFKA_BOOTSTRAP_SERVERS"]["value"] == "jobs-kafka-bootstrap.render-jobs.svc:9193"
    assert (env["KAFKA_SECURITY_PROTOCOL"]["value"], env["KAFKA_SASL_MECHANISM"]["value"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    ref = {"secretKeyRef": {"name": "job-render-kafka-credentials", "key": "password"}}
    assert env["KAFKA_PASSWORD"]["valueFrom"] == ref
    assert env["KAFKA_CA_FILE"]["value"] == "/etc/kafka/ca/ca.crt"
    [ca] = [v for v in _pod(oke, "render")["volumes"] if v["name"] == "kafka-ca"]
    assert ca["secret"] == {"secretName": "jobs-cluster-ca-cert", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    # KEDA reads its credential from its own namespace, through the one ClusterTriggerAuthentication.
    [auth] = custom(oke, "ClusterTriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": key, "name": "render-jobs-kafka-scaler", "key": key} for key in ("password", "username")
    ]
    assert set(manifests["keda.secret.render-jobs-kafka-scaler.yaml"]["stringData"]) == {"username", "password"}
    assert oke.outputs["jobsProducerPassword"] == "[secret]"
    assert oke.outputs["jobsKafka"] == {
        "bootstrapServers": "jobs-kafka-bootstrap.render-jobs.svc:9193",
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "caSecret": "jobs-cluster-ca-cert",
    }


def test_jobs_need_a_region_for_their_bucket() -> None:
    program = ROOT / "infra" / "__main__.py"
    config = {
        "pixelstream:compartmentId": "ocid1.compartment.oc1..aaaa",
        "pixelstream:jobs": '{"enabled": true, "types": {"render": {"image": "r.example/render:1"}}}',
    }
    with pytest.raises(ConfigError, match=r"^oci:region: is required with jobs"):
        run_offline(lambda: runpy.run_path(str(program)), project="pixelstream", config=config)
