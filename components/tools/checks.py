"""Checks over an offline plan's output (`build/<stack>/`), as `make check` runs them:

    python -m pixelstream.tools.checks manifests build/dev   # strict Kubernetes schema validation
    python -m pixelstream.tools.checks policies build/dev --stack-file stacks/Pulumi.dev.yaml
                                                       # the policy pack, offline, with the stack's own settings
    python -m pixelstream.tools.checks checkov build/dev     # checkov's JSON report against checkov-allowlist.yaml
    python -m pixelstream.tools.checks policy-config --stack-file stacks/Pulumi.prod.yaml
                                                       # that policy configuration, for --policy-pack-config
    python -m pixelstream.tools.checks workflows .github    # the delivery trust model (tools/workflows.py)

Each prints one line per problem and exits non-zero when there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import kubernetes_validate
import yaml

from ..config import StackConfig
from .policies import policy_config, run_policies_on_build
from .workflows import check_directory

# Custom resources whose schema comes with their chart's CRDs, which are installed by Helm at deploy time
# and cannot be fetched here: they are checked by this project's tests instead (the reason is printed).
_RENDER_TESTS = "tests/test_chart_renders.py validates them against the CRD the vendored chart renders"
CUSTOM_RESOURCE_SKIPS = {
    **{
        ("cert-manager.io/v1", kind): f"CRD schema ships in the cert-manager chart; {_RENDER_TESTS}"
        for kind in ("ClusterIssuer", "Certificate")
    },
    **{
        ("kafka.strimzi.io/v1", kind): f"CRD schema ships in the strimzi-kafka-operator chart; {_RENDER_TESTS}"
        for kind in ("Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser")
    },
    **{
        ("keda.sh/v1alpha1", kind): f"CRD schema ships in the keda chart; {_RENDER_TESTS}"
        for kind in ("ScaledJob", "ClusterTriggerAuthentication")
    },
}


def kubernetes_version(directory: Path) -> str:
    version = json.loads((directory / "outputs.json").read_text()).get("kubernetesVersion")
    if not version:
        raise SystemExit(f"{directory}/outputs.json has no kubernetesVersion output")
    return version.removeprefix("v")


def validate_manifests(directory: Path, version: str) -> tuple[list[str], list[str]]:
    """(problems, skipped) for every manifest under `directory/manifests`, in strict mode."""
    problems, skipped = [], []
    for path in sorted((directory / "manifests").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        key = (document.get("apiVersion"), document.get("kind"))
        if key in CUSTOM_RESOURCE_SKIPS:
            skipped.append(f"{path.name}: skipped, {CUSTOM_RESOURCE_SKIPS[key]}")
            continue
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path) or "(top)"
            problems.append(f"{path.name}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{path.name}: no schema for {key[1]} {key[0]} in Kubernetes {version}, and no listed reason to skip it"
            )
    return problems, skipped


@dataclass
class Allowed:
    check: str
    resources: list[str]
    reason: str


def load_allowlist(path: Path) -> list[Allowed]:
    entries = []
    for index, entry in enumerate(yaml.safe_load(path.read_text()) or []):
        reason = str(entry.get("reason") or "").strip()
        if not reason or "\n" in reason:
            raise ValueError(f"{path.name} entry {index} ({entry.get('check')}): needs a one-line reason")
        if not entry.get("check") or not entry.get("resources"):
            raise ValueError(f"{path.name} entry {index}: needs a check and its resources")
        entries.append(Allowed(entry["check"], list(entry["resources"]), reason))
    return entries


def checkov_findings(report: object) -> list[tuple[str, str, str]]:
    """(check id, resource, check name) of every failed check in a checkov JSON report."""
    reports = report if isinstance(report, list) else [report]
    return [
        (failed["check_id"], failed["resource"], failed["check_name"])
        for r in reports
        for failed in r.get("results", {}).get("failed_checks", [])
    ]


def unexpected_findings(findings: list[tuple[str, str, str]], allowlist: list[Allowed]) -> list[str]:
    problems = []
    for check, resource, name in findings:
        if not any(a.check == check and any(fnmatch(resource, p) for p in a.resources) for a in allowlist):
            problems.append(f"{check} ({name}) fails for {resource}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixelstream.tools.checks", description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=["manifests", "policies", "checkov", "policy-config", "workflows"])
    parser.add_argument(
        "build", type=Path, nargs="?", help="a stack's build directory, e.g. build/dev (workflows: .github)"
    )
    parser.add_argument("--allowlist", type=Path, default=Path("checkov-allowlist.yaml"))
    parser.add_argument("--stack-file", type=Path, help="the stack's settings, for the policies' configuration")
    options = parser.parse_args(argv)
    if options.check == "policy-config":
        if options.stack_file is None:
            parser.error("policy-config needs --stack-file")
        print(json.dumps(policy_config(StackConfig.from_stack_file(options.stack_file)), indent=2, sort_keys=True))
        return 0
    if options.build is None:
        parser.error(f"{options.check} needs a build directory")
    if options.check == "workflows":
        problems = check_directory(options.build)
        print(f"{options.build}: {len(problems)} problems with the workflows' trust rules")
    elif options.check == "manifests":
        version = kubernetes_version(options.build)
        problems, skipped = validate_manifests(options.build, version)
        for line in skipped:
            print(line)
        count = len(list((options.build / "manifests").glob("*.yaml")))
        print(
            f"{options.build}: {count - len(skipped) - len(problems)} of {count} manifests valid "
            f"for Kubernetes {version} (strict)"
        )
    elif options.check == "policies":
        settings = policy_config(StackConfig.from_stack_file(options.stack_file)) if options.stack_file else None
        problems = [str(v) for v in run_policies_on_build(options.build, settings)]
        print(f"{options.build}: {len(problems)} policy violations")
    else:
        findings = checkov_findings(json.loads((options.build / "checkov.json").read_text()))
        problems = unexpected_findings(findings, load_allowlist(options.allowlist))
        print(
            f"{options.build}: {len(findings)} checkov findings, "
            f"{len(findings) - len(problems)} allowlisted with a reason"
        )
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
