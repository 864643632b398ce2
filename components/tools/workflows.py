"""The delivery trust model as rules over `.github/workflows/*.yml`, run by `make check`:

    python -m pixelstream.tools.checks workflows .github

A branch can rewrite these files in its own pull request, so the rules cannot stop a hostile branch: GitHub
environments (their deployment-branch rules and reviewers) and the cloud side's trust policies do. The rules
keep main from drifting into a workflow that hands credentials to code nobody reviewed: every job that holds a
credential names an environment, pull requests get only the preview environment, from this repository only,
never on the prod runner and never with `pulumi up`; Pulumi tokens are short-lived (OIDC); the OCI key is
removed whatever happens; actions are pinned by commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The only environment a pull request's code may use: read-only credentials for dev's preview.
PULL_REQUEST_ENVIRONMENTS = frozenset({"dev-preview"})
# The self-hosted runner inside prod's network: main's jobs only.
PROD_RUNNER = "pixelstream-prod"
SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
# Triggers that run with this repository's secrets on code a fork chose.
UNTRUSTED_TRIGGERS = frozenset({"pull_request_target", "workflow_run"})
KEY_DIRECTORY = "$RUNNER_TEMP/oci"
_SECRET = re.compile(r"\bsecrets\.([A-Za-z_][A-Za-z0-9_]*)")
_PINNED = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")


@dataclass(frozen=True)
class Job:
    workflow: str
    name: str
    spec: dict[str, Any]
    triggers: frozenset[str]

    @property
    def where(self) -> str:
        return f"{self.workflow}: job {self.name}"

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.spec.get("steps", [])

    def text(self) -> str:
        return yaml.safe_dump(self.spec, sort_keys=True)

    def secrets(self) -> set[str]:
        """Secrets the job names, but the run's own GITHUB_TOKEN."""
        return set(_SECRET.findall(self.text())) - {"GITHUB_TOKEN"}

    def environments(self) -> set[str]:
        """The environment names the job may run in (a matrix expands them)."""
        environment = self.spec.get("environment")
        name = environment.get("name") if isinstance(environment, dict) else environment
        if name is None:
            return set()
        return _expand(str(name), self.spec)

    def runners(self) -> set[str]:
        runs_on = self.spec.get("runs-on", "")
        labels = runs_on if isinstance(runs_on, list) else [runs_on]
        return {expanded for label in labels for expanded in _expand(str(label), self.spec)}

    def permission(self, scope: str) -> str | None:
        permissions = self.spec.get("permissions")
        return permissions.get(scope) if isinstance(permissions, dict) else None

    def runs_on_pull_requests(self) -> bool:
        if "pull_request" not in self.triggers:
            return False
        condition = str(self.spec.get("if", ""))
        return not re.search(r"github\.event_name\s*==\s*'push'", condition)

    def uses(self, action: str) -> list[dict[str, Any]]:
        return [s for s in self.steps if str(s.get("uses", "")).split("@")[0] == action]

    def holds_credentials(self) -> bool:
        return bool(self.secrets()) or self.permission("id-token") == "write"


def _expand(value: str, spec: dict[str, Any]) -> set[str]:
    """`value` with `${{ matrix.x }}` replaced by each of the matrix's values of x."""
    match = re.fullmatch(r"\$\{\{\s*matrix\.([A-Za-z_-]+)\s*\}\}", value.strip())
    if not match:
        return {value}
    matrix = spec.get("strategy", {}).get("matrix", {})
    rows = matrix.get("include", []) or [{}]
    values = {str(row[match[1]]) for row in rows if match[1] in row}
    return values | {str(v) for v in matrix.get(match[1], [])}


def _jobs(workflow: str, document: dict[str, Any]) -> Iterator[Job]:
    # YAML 1.1 reads the key `on` as True.
    on = document.get("on", document.get(True, {}))
    triggers = frozenset([on] if isinstance(on, str) else on)
    for name, spec in (document.get("jobs") or {}).items():
        yield Job(workflow, name, spec, triggers)


def no_untrusted_triggers(document: dict[str, Any], workflow: str) -> list[str]:
    on = document.get("on", document.get(True, {}))
    triggers = {on} if isinstance(on, str) else set(on)
    return [
        f"{workflow}: runs on {t}, which gives secrets to a fork's code" for t in sorted(triggers & UNTRUSTED_TRIGGERS)
    ]


def read_only_by_default(document: dict[str, Any], workflow: str) -> list[str]:
    if document.get("permissions") != {"contents": "read"}:
        return [f"{workflow}: the workflow's default permissions must be `contents: read` only"]
    return []


def credentials_only_in_environments(job: Job) -> list[str]:
    if job.holds_credentials() and not job.environments():
        return [f"{job.where}: holds credentials (secrets or an OIDC token) without naming an environment"]
    return []


def pull_requests_get_the_preview_environment_only(job: Job) -> list[str]:
    if not job.runs_on_pull_requests():
        return []
    problems = []
    for environment in sorted(job.environments() - PULL_REQUEST_ENVIRONMENTS):
        problems.append(f"{job.where}: a pull request's code would run in environment {environment}")
    if PROD_RUNNER in job.runners():
        problems.append(f"{job.where}: a pull request's code would run on the prod runner ({PROD_RUNNER})")
    for step in job.uses("pulumi/actions"):
        if step.get("with", {}).get("command") != "preview":
            problems.append(f"{job.where}: a pull request runs `pulumi {step.get('with', {}).get('command')}`")
    if job.holds_credentials() and SAME_REPOSITORY not in str(job.spec.get("if", "")):
        problems.append(f"{job.where}: holds credentials on pull requests from forks too (add `if: {SAME_REPOSITORY}`)")
    return problems


def short_lived_pulumi_tokens(job: Job) -> list[str]:
    problems = []
    if "PULUMI_ACCESS_TOKEN" in job.secrets():
        problems.append(f"{job.where}: a long-lived PULUMI_ACCESS_TOKEN secret; exchange the job's OIDC token")
    if job.uses("pulumi/actions") and not job.uses("pulumi/auth-actions"):
        problems.append(f"{job.where}: runs Pulumi without pulumi/auth-actions")
    if job.uses("pulumi/auth-actions") and job.permission("id-token") != "write":
        problems.append(f"{job.where}: pulumi/auth-actions needs `id-token: write`")
    return problems


def key_material_removed(job: Job) -> list[str]:
    if not any(str(s.get("uses", "")) == "./.github/actions/setup" for s in job.steps):
        return []
    cleanup = [
        s
        for s in job.steps
        if str(s.get("if", "")).strip() in ("always()", "${{ always() }}") and KEY_DIRECTORY in str(s.get("run", ""))
    ]
    if not cleanup or job.steps.index(cleanup[-1]) != len(job.steps) - 1:
        return [f"{job.where}: writes the OCI key but does not remove {KEY_DIRECTORY} in a last `if: always()` step"]
    return []


def checkout_keeps_no_token(job: Job) -> list[str]:
    if not job.holds_credentials():
        return []
    return [
        f"{job.where}: actions/checkout leaves the job's token in .git/config (set `persist-credentials: false`)"
        for step in job.uses("actions/checkout")
        if step.get("with", {}).get("persist-credentials") is not False
    ]


def actions_pinned_by_commit(job: Job) -> list[str]:
    return [
        f"{job.where}: {step['uses']} is not pinned by a commit SHA"
        for step in job.steps
        if "uses" in step and not str(step["uses"]).startswith("./") and not _PINNED.match(str(step["uses"]))
    ]


WORKFLOW_RULES: list[Callable[[dict[str, Any], str], list[str]]] = [no_untrusted_triggers, read_only_by_default]
JOB_RULES: list[Callable[[Job], list[str]]] = [
    credentials_only_in_environments,
    pull_requests_get_the_preview_environment_only,
    short_lived_pulumi_tokens,
    key_material_removed,
    checkout_keeps_no_token,
    actions_pinned_by_commit,
]


def workflow_problems(document: dict[str, Any], workflow: str) -> list[str]:
    problems = [p for rule in WORKFLOW_RULES for p in rule(document, workflow)]
    return problems + [p for job in _jobs(workflow, document) for rule in JOB_RULES for p in rule(job)]


def action_problems(document: dict[str, Any], action: str) -> list[str]:
    steps = document.get("runs", {}).get("steps", [])
    job = Job(action, "(composite action)", {"steps": steps}, frozenset())
    return actions_pinned_by_commit(job)


def check_directory(github: Path) -> list[str]:
    """Every workflow and local action under `github` (a repository's .github directory)."""
    problems = []
    for path in sorted((github / "workflows").glob("*.yml")):
        problems += workflow_problems(yaml.safe_load(path.read_text()), path.name)
    for path in sorted((github / "actions").glob("*/action.yml")):
        problems += action_problems(yaml.safe_load(path.read_text()), f"actions/{path.parent.name}")
    return problems
