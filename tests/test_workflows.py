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


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set([True, "pull_request_target"], None), "runs on pull_request_target"),  # YAML 1.1: `on` reads as True
        (_set(["permissions"], {"contents": "write"}), "default permissions"),
        (lambda d: d["jobs"]["deploy"].pop("environment"), "job deploy: holds credentials"),
        (_set(["jobs", "preview-pull-request", "environment"], "prod"), "would run in environment prod"),
        (_set(["jobs", "preview-pull-request", "runs-on"], "pixelstream-prod"), "on the prod runner"),
        (_drop_if("deploy"), "would run in environment prod"),
        (_drop_if("deploy"), "runs `pulumi up`"),
        (_set(["jobs", "preview-pull-request", "if"], "github.event_name == 'pull_request'"), "from forks too"),
        (_up_in_pull_request, "runs `pulumi up`"),
        (_pulumi_token_secret, "long-lived PULUMI_ACCESS_TOKEN"),
        (_no_auth_action, "without pulumi/auth-actions"),
        (lambda d: d["jobs"]["deploy"]["permissions"].pop("id-token"), "needs `id-token: write`"),
        (_last_step_removed("deploy"), "does not remove $RUNNER_TEMP/oci"),
        (_cleanup_not_always, "does not remove $RUNNER_TEMP/oci"),
        (_token_kept, "persist-credentials: false"),
        (_tag_not_commit, "not pinned by a commit SHA"),
    ],
)
def test_each_weakening_is_caught(change: Callable[[dict[str, Any]], None], problem: str) -> None:
    assert any(problem in p for p in weakened(change)), weakened(change)


def test_a_composite_action_with_a_moving_tag_is_caught(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "actions" / "setup").mkdir(parents=True)
    action = yaml.safe_load((ROOT / ".github" / "actions" / "setup" / "action.yml").read_text())
    action["runs"]["steps"][0]["uses"] = "actions/setup-python@v7"
    (tmp_path / "actions" / "setup" / "action.yml").write_text(yaml.safe_dump(action))
    assert check_directory(tmp_path) == [
        "actions/setup: job (composite action): actions/setup-python@v7 is not pinned by a commit SHA"
    ]
