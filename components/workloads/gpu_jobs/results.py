"""JobResults: the OCI Object Storage bucket the GPU jobs write their results to, private, with a lifecycle rule
that deletes results after their retention, and the access the jobs get to it.

Access is never a long-lived key in a pod. With OKE workload identity, an IAM policy lets each job type's service
account in this cluster's jobs namespace create objects in this bucket under that type's own prefix
(`<prefix><type>/`), and nothing else: no read, overwrite or delete, and no other type's results.
With pre-authenticated requests, the stack grants the pods nothing: the producer of each task creates a
write-only, expiring request for that task's results and sends it in the message (the job contract, docs/hybrid.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pulumi
import pulumi_oci as oci

Access = Literal["workloadIdentity", "preAuthenticatedRequest"]


def lifecycle_statement(region: str, compartment_id: str, bucket: str) -> str:
    """Object Storage deletes expired objects on our behalf only when allowed to (OCI "Using Object Lifecycle
    Management": service permissions), here for this bucket only."""
    return (
        f"Allow service objectstorage-{region} to manage object-family in compartment id {compartment_id} "
        f"where target.bucket.name = '{bucket}'"
    )


def workload_statement(
    compartment_id: str, cluster_id: str, namespace: str, account: str, bucket: str, prefix: str
) -> str:
    """A job type's service account, in this cluster's namespace, may create objects in the bucket under its
    `prefix`: nothing else (Object Storage's `target.object.name` takes patterns, IAM's `/.../` with `*`)."""
    condition = (
        f"request.principal.type = 'workload', request.principal.namespace = '{namespace}', "
        f"request.principal.service_account = '{account}', request.principal.cluster_id = '{cluster_id}', "
        f"target.bucket.name = '{bucket}', target.object.name = /{prefix}*/, request.permission = 'OBJECT_CREATE'"
    )
    return f"Allow any-user to manage objects in compartment id {compartment_id} where ALL {{{condition}}}"


@dataclass(kw_only=True)
class JobResultsArgs:
    compartment_id: pulumi.Input[str]
    bucket: str
    region: str
    """The region of the bucket (Object Storage's service principal there runs the lifecycle rule)."""
    prefix: str = "results/"
    retention_days: int = 30
    access: Access = "preAuthenticatedRequest"
    cluster_id: pulumi.Input[str] | None = None
    """Workload identity: the OKE cluster whose jobs may write."""
    namespace: str = "gpu-jobs"
    service_accounts: Mapping[str, str] = field(default_factory=dict)
    """Workload identity: by job type, its service account; each writes under `<prefix><type>/`."""
    policy_name: str = "gpu-job-results"

    def validate(self) -> None:
        if self.access == "workloadIdentity" and self.cluster_id is None:
            raise ValueError("workload identity needs the OKE cluster (cluster_id)")
        if self.retention_days < 1:
            raise ValueError(f"retention_days must be >= 1, not {self.retention_days}")


class JobResults(pulumi.ComponentResource):
    """Outputs: `bucket`, `object_namespace` (the tenancy's Object Storage namespace), `policy_statements`."""

    bucket: pulumi.Output[str]
    object_namespace: pulumi.Output[str]
    policy_statements: pulumi.Output[list[str]]

    def __init__(self, name: str, args: JobResultsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        super().__init__("pixelstream:index:JobResults", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        object_namespace = oci.objectstorage.get_namespace_output(compartment_id=args.compartment_id).namespace
        bucket = oci.objectstorage.Bucket(
            f"{name}-bucket",
            name=args.bucket,
            namespace=object_namespace,
            compartment_id=args.compartment_id,
            access_type="NoPublicAccess",
            storage_tier="Standard",
            versioning="Disabled",
            opts=child,
        )
        statements = pulumi.Output.from_input(args.compartment_id).apply(
            lambda compartment: [lifecycle_statement(args.region, compartment, args.bucket)]
        )
        if args.access == "workloadIdentity":
            statements = pulumi.Output.all(args.compartment_id, args.cluster_id).apply(
                lambda ids: [
                    lifecycle_statement(args.region, ids[0], args.bucket),
                    *(
                        workload_statement(
                            ids[0], ids[1], args.namespace, account, args.bucket, f"{args.prefix}{job_type}/"
                        )
                        for job_type, account in sorted(args.service_accounts.items())
                    ),
                ]
            )
        policy = oci.identity.Policy(
            f"{name}-policy",
            name=args.policy_name,
            compartment_id=args.compartment_id,
            description=f"GPU job results in {args.bucket}: lifecycle deletion"
            + (", and the jobs' workload identity may create objects" if args.access == "workloadIdentity" else ""),
            statements=statements,
            opts=child,
        )
        oci.objectstorage.ObjectLifecyclePolicy(
            f"{name}-lifecycle",
            bucket=bucket.name,
            namespace=object_namespace,
            rules=[
                oci.objectstorage.ObjectLifecyclePolicyRuleArgs(
                    name="expire-results",
                    action="DELETE",
                    is_enabled=True,
                    target="objects",
                    time_amount=str(args.retention_days),
                    time_unit="DAYS",
                    object_name_filter=oci.objectstorage.ObjectLifecyclePolicyRuleObjectNameFilterArgs(
                        inclusion_prefixes=[args.prefix] if args.prefix else None
                    ),
                ),
                # Uploads a job abandoned (killed at its deadline) would otherwise be billed forever.
                oci.objectstorage.ObjectLifecyclePolicyRuleArgs(
                    name="abort-abandoned-uploads",
                    action="ABORT",
                    is_enabled=True,
                    target="multipart-uploads",
                    time_amount="1",
                    time_unit="DAYS",
                ),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.bucket = bucket.name
        self.object_namespace = object_namespace
        self.policy_statements = statements
        self.register_outputs({"bucket": self.bucket, "object_namespace": self.object_namespace})
