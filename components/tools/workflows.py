"""The delivery trust model as rules over `.github/workflows/*.y*ml` and `.github/actions/*/action.y*ml`, run by
`make check`:

    python -m pixelstream.tools.checks workflows .github

A branch can rewrite these files in its own pull request, so the rules cannot stop a hostile branch: GitHub
(environments, the prod runner's group restricted to main's workflow) and the trust policies of Pulumi Cloud and
OCI do. The rules keep main from drifting into a workflow that hands credentials to code nobody reviewed.

A job runs *branch code* unless its `if:` has the conjunct `github.ref == 'refs/heads/main'` (and no `||` or
`!`): pull requests, pushes and manual runs of other branches all count. Branch code gets only the preview
environment, from this repository's branches only, never the prod runner, never `pulumi up` or write
permissions. Every job that holds a credential names an environment; Pulumi tokens are short-lived (OIDC); the
OCI key and Pulumi's own files are removed in the job's last `if: always()` step; checkouts keep no token;
actions and reusable workflows are pinned by commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The only environment branch code may use: read-only credentials for dev's preview.
PULL_REQUEST_ENVIRONMENTS = frozenset({"dev-preview"})
# The self-hosted runner inside prod's network (labels are case-insensitive).
PROD_RUNNER = "pixelstream-prod"
MAIN_ONLY = "github.ref == 'refs/heads/main'"
SAME_REPOSITORY = "github.event.pull_request.head.repo.full_name == github.repository"
# Triggers that run with this repository's secrets on code a fork chose.
UNTRUSTED_TRIGGERS = frozenset({"pull_request_target", "workflow_run"})
# Where a job keeps what it must forget: the OCI key and Pulumi's home (its login).
CREDENTIAL_DIRECTORIES = ("$RUNNER_TEMP/oci", "$RUNNER_TEMP/pulumi")
PULUMI_HOME = "${{ runner.temp }}/pulumi"
SETUP_ACTION = "./.github/actions/setup"
_SECRET = re.compile(r"\bsecrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[|\))")
_PINNED = re.compile(r"^([^@\s]+@[0-9a-f]{40}|docker://[^@\s]+@sha256:[0-9a-f]{64})$")
_DEPLOYS = re.compile(r"\bpulumi\s+(up|update|destroy|refresh|import|stack\s+rm|state)\b")
_WRITE_SCOPES = frozenset({"contents", "packages", "actions", "deployments", "id-token", "pull-requests"})


def _expression(text: Any) -> str:
    """An `if:` as one line without its `${{ }}`."""
    value = " ".join(str(text or "").split())
    return value[3:-2].strip() if value.startswith("${{") and value.endswith("}}") else value


def _conjuncts(condition: str) -> list[str] | None:
    """The `&&` parts of a condition, or None when it has `||` or `!` (then no part is certain to hold)."""
    if "||" in condition or re.search(r"!(?!=)", condition):
        return None
    return [part.strip().strip("()").strip() for part in condition.split("&&")]


def _normalised(part: str) -> str:
    return part.replace('"', "'")


def requires(condition: Any, clause: str) -> bool:
    """Whether the `if:` `condition` holds only when `clause` does."""
    parts = _conjuncts(_expression(condition))
    return parts is not None and _normalised(clause) in {_normalised(p) for p in parts}


@dataclass(frozen=True)
class Job:
    workflow: str
    name: str
    spec: dict[str, Any]
    triggers: frozenset[str]
    workflow_env: str = ""

    @property
    def where(self) -> str:
        return f"{self.workflow}: job {self.name}"

    @property
    def steps(self) -> list[dict[str, Any]]:
        return self.spec.get("steps", [])

    def text(self) -> str:
        return yaml.safe_dump(self.spec, sort_keys=True) + self.workflow_env

    def secrets(self) -> set[str]:
        """Secrets the job names (`*` for all of them, or one named by an expression), but its GITHUB_TOKEN."""
        names = {match or "*" for match in _SECRET.findall(self.text())}
        if self.spec.get("secrets") == "inherit":
            names.add("*")
        return names - {"GITHUB_TOKEN"}

    def environments(self) -> set[str]:
        environment = self.spec.get("environment")
        name = environment.get("name") if isinstance(environment, dict) else environment
        return set() if name is None else _expand(str(name), self.spec)

    def runners(self) -> set[str]:
        runs_on = self.spec.get("runs-on", "")
        if isinstance(runs_on, dict):
            labels = [runs_on.get("group", ""), *_as_list(runs_on.get("labels", []))]
        else:
            labels = _as_list(runs_on)
        return {expanded.lower() for label in labels for expanded in _expand(str(label), self.spec)}

    def permission(self, scope: str) -> str | None:
        permissions = self.spec.get("permissions")
        if permissions in ("write-all", "read-all"):
            return permissions.removesuffix("-all")
        return permissions.get(scope) if isinstance(permissions, dict) else None

    def runs_branch_code(self) -> bool:
        """Whether code of a branch other than main can run in this job."""
        return bool(self.triggers - {"schedule"}) and not requires(self.spec.get("if"), MAIN_ONLY)

    def uses(self, action: str) -> list[dict[str, Any]]:
        return [s for s in self.steps if str(s.get("uses", "")).split("@")[0].rstrip("/") == action]

    def holds_credentials(self) -> bool:
        return bool(self.secrets()) or self.permission("id-token") == "write"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _expand(value: str, spec: dict[str, Any]) -> set[str]:
    """`value` with a `${{ matrix.x }}` in it replaced by each of the matrix's values of x; an expression the
    matrix does not answer stays as it is (and so matches no name a rule allows)."""
    match = re.search(r"\$\{\{\s*matrix\.([A-Za-z_-]+)\s*\}\}", value)
    matrix = spec.get("strategy", {}).get("matrix", {})
    if not match or not isinstance(matrix, dict):
        return {value}
    rows = matrix.get("include", []) or [{}]
    found = {str(row[match[1]]) for row in rows if isinstance(row, dict) and match[1] in row}
    found |= {str(v) for v in _as_list(matrix.get(match[1], []))}
    return {value.replace(match[0], v) for v in found} or {value}


def _triggers(document: dict[str, Any]) -> frozenset[str]:
    # YAML 1.1 reads the key `on` as True.
    on = document.get("on", document.get(True, {}))
    triggers = set(_as_list(on)) if not isinstance(on, dict) else set(on)
    push = on.get("push") if isinstance(on, dict) else None
    if isinstance(push, dict) and push.get("branches") == ["main"] and not push.get("tags"):
        triggers.discard("push")  # main's own code
    return frozenset(triggers)


def _jobs(workflow: str, document: dict[str, Any]) -> Iterator[Job]:
    env = yaml.safe_dump(document.get("env", {}))
    for name, spec in (document.get("jobs") or {}).items():
        yield Job(workflow, name, spec, _triggers(document), env)


def no_untrusted_triggers(document: dict[str, Any], workflow: str) -> list[str]:
    on = document.get("on", document.get(True, {}))
    triggers = set(on) if isinstance(on, dict) else set(_as_list(on))
    return [
        f"{workflow}: runs on {t}, which gives secrets to a fork's code" for t in sorted(triggers & UNTRUSTED_TRIGGERS)
    ]


def read_only_by_default(document: dict[str, Any], workflow: str) -> list[str]:
    if document.get("permissions") not in ({"contents": "read"}, {}):
        return [f"{workflow}: the workflow's default permissions must be `contents: read` or none"]
    return []


def credentials_only_in_environments(job: Job) -> list[str]:
    if job.holds_credentials() and not job.environments():
        return [f"{job.where}: holds credentials (secrets or an OIDC token) without naming an environment"]
    return []


def branch_code_gets_the_preview_only(job: Job) -> list[str]:
    if not job.runs_branch_code():
        return []
    problems = [
        f"{job.where}: a branch's code would run in environment {environment}"
        for environment in sorted(job.environments() - PULL_REQUEST_ENVIRONMENTS)
    ]
    if any(PROD_RUNNER in runner or "${{" in runner for runner in job.runners()):
        problems.append(f"{job.where}: a branch's code could run on the prod runner ({PROD_RUNNER})")
    commands = [str(s.get("with", {}).get("command")) for s in job.uses("pulumi/actions")]
    commands += [command for s in job.steps for command in _DEPLOYS.findall(str(s.get("run", "")))]
    problems += [f"{job.where}: a branch's code runs `pulumi {c}`" for c in commands if c != "preview"]
    for scope in sorted(_WRITE_SCOPES - {"id-token", "pull-requests"}):
        if job.permission(scope) == "write":
            problems.append(f"{job.where}: a branch's code gets `{scope}: write`")
    if job.holds_credentials() and not requires(job.spec.get("if"), SAME_REPOSITORY):
        problems.append(
            f"{job.where}: holds credentials for forks and other branches too (needs `if: {SAME_REPOSITORY}`)"
        )
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


def credentials_forgotten(job: Job) -> list[str]:
    if not (job.uses(SETUP_ACTION) or job.uses("pulumi/auth-actions")):
        return []
    problems = []
    if job.uses("pulumi/auth-actions") and job.spec.get("env", {}).get("PULUMI_HOME") != PULUMI_HOME:
        problems.append(f"{job.where}: Pulumi would keep its login in the home directory (PULUMI_HOME: {PULUMI_HOME})")
    last = job.steps[-1] if job.steps else {}
    run = str(last.get("run", ""))
    removed = set(re.findall(r"\$RUNNER_TEMP/(oci|pulumi)\b", run)) if re.match(r"\s*rm\s+-rf\s", run) else set()
    if _expression(last.get("if")) != "always()" or removed != {"oci", "pulumi"}:
        problems.append(
            f"{job.where}: its last step must be `if: always()` and remove {' and '.join(CREDENTIAL_DIRECTORIES)}"
        )
    return problems


def checkout_keeps_no_token(job: Job) -> list[str]:
    if not job.holds_credentials():
        return []
    return [
        f"{job.where}: actions/checkout leaves the job's token in .git/config (set `persist-credentials: false`)"
        for step in job.uses("actions/checkout")
        if str(step.get("with", {}).get("persist-credentials")).lower() != "false"
    ]


def actions_pinned_by_commit(job: Job) -> list[str]:
    used = [str(s["uses"]) for s in job.steps if "uses" in s]
    used += [str(job.spec["uses"])] if "uses" in job.spec else []
    return [
        f"{job.where}: {u} is not pinned by a commit SHA"
        for u in used
        if not u.startswith("./") and not _PINNED.match(u)
    ]


WORKFLOW_RULES: list[Callable[[dict[str, Any], str], list[str]]] = [no_untrusted_triggers, read_only_by_default]
JOB_RULES: list[Callable[[Job], list[str]]] = [
    credentials_only_in_environments,
    branch_code_gets_the_preview_only,
    short_lived_pulumi_tokens,
    credentials_forgotten,
    checkout_keeps_no_token,
    actions_pinned_by_commit,
]


def workflow_problems(document: dict[str, Any], workflow: str) -> list[str]:
    problems = [p for rule in WORKFLOW_RULES for p in rule(document, workflow)]
    return problems + [p for job in _jobs(workflow, document) for rule in JOB_RULES for p in rule(job)]


def action_problems(document: dict[str, Any], action: str) -> list[str]:
    steps = document.get("runs", {}).get("steps", [])
    return actions_pinned_by_commit(Job(action, "(composite action)", {"steps": steps}, frozenset()))


def check_directory(github: Path) -> list[str]:
    """Every workflow and local action under `github` (a repository's .github directory)."""
    workflows = sorted((github / "workflows").glob("*.y*ml"))
    if not workflows:
        return [f"{github}: no workflows (.github/workflows/*.yml) to check"]
    problems = []
    for path in workflows:
        problems += workflow_problems(yaml.safe_load(path.read_text()), path.name)
    for path in sorted((github / "actions").glob("*/action.y*ml")):
        problems += action_problems(yaml.safe_load(path.read_text()), f"actions/{path.parent.name}")
    return problems
