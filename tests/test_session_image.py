"""The session service's image as far as this machine can build it (no container engine here): its Dockerfile
copies what exists, from pinned bases that are the workloads' own, its lock file pins exactly the ranges the
tests run with, and those locked dependencies install by their hashes and run the service's code; the workflow
that builds and publishes it passes GitHub's schema and gives a pull request nothing to push with."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SHARED_APP
from test_checks import schema_check

from pixelstream.workloads.images import IMAGES, SESSION_VERSION

SESSION = ROOT / "components" / "workloads" / "pixel_streaming" / "session"
CONTEXT = ROOT / "components" / "workloads"
DOCKERFILE = SESSION / "Dockerfile"
WORKFLOW = ROOT / ".github" / "workflows" / "images.yml"


def instructions() -> list[tuple[str, str]]:
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_the_image_builds_from_pinned_bases_and_runs_on_the_workloads_python() -> None:
    bases = [argument.split()[0] for kind, argument in instructions() if kind == "FROM"]
    assert bases == ["docker.io/library/node:22.14.0-bookworm-slim", IMAGES["python"]]
    assert all(":" in b and not b.endswith(":latest") for b in bases)
    # Epic builds its frontend with this Node.js (NODE_VERSION at the UE5.7 branch: v22.14.0).
    assert "22.14.0" in bases[0]


def test_every_file_the_dockerfile_copies_is_in_its_context() -> None:
    copied = []
    for kind, argument in instructions():
        if kind == "COPY" and not argument.startswith("--from="):
            copied += argument.split()[:-1]
    assert copied
    for source in copied:
        assert list(CONTEXT.glob(source)), f"{source} is not in {CONTEXT.relative_to(ROOT)}"
    assert list(CONTEXT.glob("pixel_streaming/session/*.py")) == list(SESSION.glob("*.py"))


def test_the_image_runs_unprivileged_and_serves_the_player_page_it_built() -> None:
    kinds = dict(instructions())
    assert kinds["USER"] == "10001:10001"
    assert kinds["ENTRYPOINT"] == '["python", "-m", "session"]'
    assert "--require-hashes" in kinds["RUN"] or any(
        "--require-hashes" in a for k, a in instructions() if k == "RUN"
    ), "dependencies install by hash"
    from pixelstream.workloads.pixel_streaming.sessions import PLAYER_ROOT

    assert ("COPY", "--from=player /player/dist ./player") in instructions()
    assert PLAYER_ROOT == "/app/player" and ("WORKDIR", "/app") in instructions()


def test_the_lock_pins_exactly_the_ranges_the_tests_use() -> None:
    wanted = [
        line.strip()
        for line in (SESSION / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert f"-r {(SESSION / 'requirements.in').relative_to(ROOT)}" in (ROOT / "requirements.txt").read_text()
    locked = dict(re.findall(r"^([a-z0-9-]+)==([^ ;\\\n]+)", (SESSION / "requirements.txt").read_text(), re.M))
    assert {"aiohttp", "pyjwt", "cryptography"} <= set(locked)
    from packaging.requirements import Requirement

    for line in wanted:
        requirement = Requirement(line)
        assert requirement.specifier.contains(locked[requirement.name.lower()]), (line, locked)
    entries = re.split(r"^(?=[a-z0-9-]+==)", (SESSION / "requirements.txt").read_text(), flags=re.M)[1:]
    assert len(entries) == len(locked)
    assert all("--hash=sha256:" in entry for entry in entries), "every pin carries its hashes"


@pytest.mark.slow
def test_the_locked_dependencies_install_by_hash_and_run_the_service(tmp_path: Path) -> None:
    """pip refuses anything the lock does not name or whose hash differs; the service then imports and verifies
    a signed launch link with RS256 (cryptography present) in that environment alone."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "--only-binary=:all:"]
    result = subprocess.run([*install, "-r", str(SESSION / "requirements.txt")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    script = """
import jwt, time
from cryptography.hazmat.primitives.asymmetric import rsa
from session import app, auth
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
assert jwt.algorithms.has_crypto
now = int(time.time())
token = jwt.encode({"sub": "p", "aud": "a", "iat": now, "exp": now + 60, "jti": "x"}, key, algorithm="RS256")
print(jwt.decode(token, key.public_key(), algorithms=["RS256"], audience="a")["sub"], app.COOKIE)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SESSION.parent), str(SHARED_APP)])}
    run = subprocess.run([str(python), "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["p", "pxsession"]


def test_the_images_workflow_builds_every_change_and_publishes_only_from_main(tmp_path: Path) -> None:
    assert schema_check("vendor.github-workflows", WORKFLOW).returncode == 0
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "push", "workflow_dispatch"}
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    jobs = workflow["jobs"]
    assert jobs["build"]["if"] == "github.event_name == 'pull_request'" and "permissions" not in jobs["build"]
    assert jobs["publish"]["if"] == "github.event_name != 'pull_request' && github.ref == 'refs/heads/main'", (
        "a pull request, or a run of another branch, publishes nothing"
    )
    assert jobs["publish"]["permissions"] == {"contents": "read", "packages": "write"}
    assert not [s for s in jobs["build"]["steps"] if s.get("uses", "").startswith("docker/login-action")]
    for name, push in (("build", False), ("publish", True)):
        build = next(s for s in jobs[name]["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
        assert build["with"]["push"] is push
        assert build["with"]["context"] == "components/workloads"
        assert build["with"]["file"] == str(DOCKERFILE.relative_to(ROOT))
        assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    steps = jobs["publish"]["steps"]
    version_step = next(s for s in steps if s.get("id") == "image")
    assert "SESSION_VERSION" in version_step["run"] and SESSION_VERSION
    assert IMAGES["session"].endswith(f"/session:{SESSION_VERSION}")
