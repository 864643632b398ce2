"""The delivery trust model (components/tools/workflows.py) on this repository's workflows, and each rule's
negative case: the workflow as it is passes; the same workflow with one thing weakened fails, naming it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

from pixelstream.tools.workflows import SAME_REPOSITORY, check_directory, workflow_problems

WORKFLOWS = ROOT / ".github" / "workflows"


def pulumi_workflow() -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / "pulumi.yml").read_text())


def test_this_repositorys_workflows_and_actions_keep_the_rules() -> None:
    assert check_directory(ROOT / ".github") == []


def test_pull_requests_get_tests_and_a_dev_preview_only_from_this_repository() -> None:
    jobs = pulumi_workflow()["jobs"]
    assert "secrets" not in yaml.safe_dump(jobs["test"]) and "environment" not in jobs["test"]
    preview = jobs["preview-pull-request"]
    assert SAME_REPOSITORY in preview["if"] and preview["environment"] == "dev-preview"
    assert preview["runs-on"] == "ubuntu-24.04"
    for name in ("preview", "deploy"):
        assert jobs[name]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert jobs["deploy"]["needs"] == "preview", "prod's approvers read its preview first"
    assert jobs["deploy"]["environment"] == "${{ matrix.stack }}"
    for name in ("preview", "deploy"):
        rows = {row["stack"]: row for row in jobs[name]["strategy"]["matrix"]["include"]}
        assert rows["prod"] == {"stack": "prod", "runner": "pixelstream-prod", "oci-auth": "instance-principal"}
        assert rows["dev"]["oci-auth"] == "api-key"
    prod = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    assert prod["oci:auth"] == "InstancePrincipal", "no API key for prod exists"


def weakened(change: Callable[[dict[str, Any]], None]) -> list[str]:
    document = copy.deepcopy(pulumi_workflow())
    change(document)
    return workflow_problems(document, "pulumi.yml")


def _step(document: dict[str, Any], job: str, uses: str) -> dict[str, Any]:
    return next(s for s in document["jobs"][job]["steps"] if str(s.get("uses", "")).startswith(uses))


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _drop_if(job: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["jobs"][job].pop("if")


def _last_step_removed(job: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["jobs"][job]["steps"].pop()


def _pulumi_token_secret(document: dict[str, Any]) -> None:
    _step(document, "deploy", "pulumi/actions")["env"] = {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}


def _no_auth_action(document: dict[str, Any]) -> None:
    steps = document["jobs"]["deploy"]["steps"]
    steps.remove(_step(document, "deploy", "pulumi/auth-actions"))


def _token_kept(document: dict[str, Any]) -> None:
    _step(document, "preview", "actions/checkout")["with"] = {}


def _tag_not_commit(document: dict[str, Any]) -> None:
    _step(document, "test", "actions/checkout")["uses"] = "actions/checkout@v7"


def _up_in_pull_request(document: dict[str, Any]) -> None:
    _step(document, "preview-pull-request", "pulumi/actions")["with"]["command"] = "up"


def _cleanup_not_always(document: dict[str, Any]) -> None:
    document["jobs"]["deploy"]["steps"][-1].pop("if")


def _cleanup_not_last(document: dict[str, Any]) -> None:
    document["jobs"]["deploy"]["steps"].append({"run": "echo done"})


def _cleanup_pretends(document: dict[str, Any]) -> None:
    document["jobs"]["deploy"]["steps"][-1]["run"] = 'echo "$RUNNER_TEMP/oci $RUNNER_TEMP/pulumi"'


def _or_true(job: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["jobs"][job]["if"] += " || true"

    return change


def _negated_fork_check(document: dict[str, Any]) -> None:
    document["jobs"]["preview-pull-request"]["if"] = (
        "github.event_name == 'pull_request' && !(github.event.pull_request.head.repo.full_name == github.repository)"
    )


def _step_env(job: str, value: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["jobs"][job]["steps"][-1]["env"] = {"LEAK": value}

    return change


def _reusable(uses: str, **extra: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["jobs"]["reused"] = {"uses": uses, **extra}

    return change


def _run_in_pull_request(command: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document["jobs"]["preview-pull-request"]["steps"].insert(-1, {"run": command})

    return change


PINNED_REUSABLE = "example/workflows/.github/workflows/x.yml@" + "0" * 40


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set([True, "pull_request_target"], None), "runs on pull_request_target"),  # YAML 1.1: `on` reads as True
        (_set([True, "workflow_run"], {"workflows": ["pulumi"]}), "runs on workflow_run"),
        (_set(["permissions"], {"contents": "write"}), "default permissions"),
        (_set(["permissions"], "write-all"), "default permissions"),
        (lambda d: d["jobs"]["deploy"].pop("environment"), "job deploy: holds credentials"),
        (_set(["jobs", "preview-pull-request", "environment"], "prod"), "would run in environment prod"),
        (_set(["jobs", "preview-pull-request", "environment"], {"name": "prod"}), "would run in environment prod"),
        (_set(["jobs", "preview-pull-request", "runs-on"], "pixelstream-prod"), "on the prod runner"),
        (_set(["jobs", "preview-pull-request", "runs-on"], ["self-hosted", "pixelstream-prod"]), "on the prod runner"),
        (_set(["jobs", "preview-pull-request", "runs-on"], {"group": "pixelstream-prod"}), "on the prod runner"),
        (_set(["jobs", "preview-pull-request", "runs-on"], "PixelStream-Prod"), "on the prod runner"),
        (_set(["jobs", "test", "runs-on"], "${{ github.head_ref }}"), "on the prod runner"),
        (_drop_if("deploy"), "would run in environment prod"),
        (_drop_if("deploy"), "runs `pulumi up`"),
        (_or_true("deploy"), "would run in environment prod"),
        (_set(["jobs", "preview-pull-request", "if"], "github.event_name == 'pull_request'"), "forks and other"),
        (_or_true("preview-pull-request"), "forks and other"),
        (_negated_fork_check, "forks and other"),
        (_up_in_pull_request, "runs `pulumi up`"),
        (_run_in_pull_request("pulumi up --yes --stack prod"), "runs `pulumi up`"),
        (_run_in_pull_request("pulumi destroy --yes"), "runs `pulumi destroy`"),
        (_set(["jobs", "test", "permissions"], "write-all"), "gets `contents: write`"),
        (_set(["jobs", "test", "permissions"], {"packages": "write"}), "gets `packages: write`"),
        (_pulumi_token_secret, "long-lived PULUMI_ACCESS_TOKEN"),
        (_step_env("test", "${{ secrets['OCI_CLI_KEY_CONTENT'] }}"), "job test: holds credentials"),
        (_step_env("test", "${{ toJSON(secrets) }}"), "job test: holds credentials"),
        (_set(["env"], {"KEY": "${{ secrets.OCI_CLI_KEY_CONTENT }}"}), "job test: holds credentials"),
        (_reusable(PINNED_REUSABLE, secrets="inherit"), "job reused: holds credentials"),
        (_reusable("example/workflows/.github/workflows/x.yml@main"), "not pinned by a commit SHA"),
        (_no_auth_action, "without pulumi/auth-actions"),
        (lambda d: d["jobs"]["deploy"]["permissions"].pop("id-token"), "needs `id-token: write`"),
        (lambda d: d["jobs"]["deploy"].pop("env"), "PULUMI_HOME"),
        (_last_step_removed("deploy"), "its last step must be"),
        (_cleanup_not_always, "its last step must be"),
        (_cleanup_not_last, "its last step must be"),
        (_cleanup_pretends, "its last step must be"),
        (_token_kept, "persist-credentials: false"),
        (_tag_not_commit, "not pinned by a commit SHA"),
    ],
)
def test_each_weakening_is_caught(change: Callable[[dict[str, Any]], None], problem: str) -> None:
    assert any(problem in p for p in weakened(change)), weakened(change)


@pytest.mark.parametrize(
    "change",
    [
        _set(["permissions"], {}),
        lambda d: _step(d, "preview", "actions/checkout")["with"].update({"persist-credentials": "false"}),
        lambda d: _step(d, "test", "actions/checkout").update({"uses": "docker://alpine@sha256:" + "a" * 64}),
        _reusable(PINNED_REUSABLE),
    ],
    ids=["no default permissions", "persist-credentials as a string", "a docker image by digest", "pinned reuse"],
)
def test_what_is_as_strict_passes(change: Callable[[dict[str, Any]], None]) -> None:
    assert weakened(change) == []


def test_a_push_to_any_branch_is_branch_code_and_a_push_to_main_is_not() -> None:
    job = {"runs-on": "pixelstream-prod", "steps": [{"run": "make"}]}
    anywhere = {"on": {"push": None}, "permissions": {}, "jobs": {"build": job}}
    main = {"on": {"push": {"branches": ["main"]}}, "permissions": {}, "jobs": {"build": job}}
    assert workflow_problems(anywhere, "w.yml") == [
        "w.yml: job build: a branch's code could run on the prod runner (pixelstream-prod)"
    ]
    assert workflow_problems(main, "w.yml") == []


def test_every_workflow_file_is_read_and_none_is_a_problem(tmp_path: Path) -> None:
    assert check_directory(tmp_path) == [f"{tmp_path}: no workflows (.github/workflows/*.yml) to check"]
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "sneaky.yaml").write_text(yaml.safe_dump({"on": ["pull_request_target"], "jobs": {}}))
    assert check_directory(tmp_path) == [
        "sneaky.yaml: runs on pull_request_target, which gives secrets to a fork's code",
        "sneaky.yaml: the workflow's default permissions must be `contents: read` or none",
    ]


def test_a_composite_action_with_a_moving_tag_is_caught(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "ok.yml").write_text(yaml.safe_dump({"on": ["pull_request"], "permissions": {}}))
    (tmp_path / "actions" / "setup").mkdir(parents=True)
    action = yaml.safe_load((ROOT / ".github" / "actions" / "setup" / "action.yml").read_text())
    action["runs"]["steps"][0]["uses"] = "actions/setup-python@v7"
    (tmp_path / "actions" / "setup" / "action.yml").write_text(yaml.safe_dump(action))
    assert check_directory(tmp_path) == [
        "actions/setup: job (composite action): actions/setup-python@v7 is not pinned by a commit SHA"
    ]
