"""Queue-driven GPU jobs: Kafka (Strimzi or external), KEDA ScaledJobs on GPU nodes, results in Object Storage."""
