"""The GPU node image build (pixelstream.tools.nodeimage): what it bakes in, the script the build instance runs
(in bash, with crictl, systemctl, cloud-init and poweroff stood in), and the build's OCI CLI calls (each parsed by
the real OCI CLI's command tree, tests/fake_oci.py)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from tools import one_line_error

from pixelstream.tools.nodeimage import (
    NodeImageError,
    Placement,
    Recipe,
    build,
    main,
    pull_auths,
    recipe,
    registry,
    user_data,
)
from pixelstream.workloads.images import streaming_images
from pixelstream.workloads.pixel_streaming.gpu_capacity import GpuCapacityArgs, prepull_images

OCI_CLI_VENV = Path(os.environ.get("OCI_CLI_VENV", ROOT / ".venv-oci-cli"))
PRIVATE = "eu-frankfurt-1.ocir.io/tenancy/unreal/game:1.4.2"
PUBLIC = "docker.io/pixelstreamingunofficial/pixel-streaming-signalling-server:5.7"
SECRET_AUTH = base64.b64encode(b"tenancy/robot:s3cret-token").decode()
RECIPE = Recipe("prod", "VM.GPU.A10.1", "v1.34.2", 200, (PUBLIC, PRIVATE))
PLACEMENT = Placement("ocid1.compartment.oc1..c", "ocid1.subnet.oc1..s", "Uocm:EU-FRANKFURT-1-AD-1")


def test_the_image_holds_what_the_pre_pull_pulls_and_is_named_by_it() -> None:
    made = recipe("prod", ROOT)
    from pixelstream.config import StackConfig

    config = StackConfig.from_stack_file(ROOT / "stacks" / "Pulumi.prod.yaml")
    args = GpuCapacityArgs(
        namespace="pixel", images=streaming_images(config.streaming.images), builds=config.streaming.stream_builds()
    )
    assert set(made.images) == {image for image, _ in prepull_images(args).values()}
    assert (made.shape, made.kubernetes_version) == (config.node_pools.gpu.shape, config.cluster.kubernetes_version)
    assert re.fullmatch(r"pixelstream-gpu-prod-v1\.34\.2-[0-9a-f]{12}", made.name)
    changed = Recipe(made.stack, made.shape, made.kubernetes_version, 200, (*made.images[:-1], PRIVATE))
    assert changed.name != made.name, "another image is another node image"


@pytest.mark.parametrize(
    ("image", "host"),
    [
        (PRIVATE, "eu-frankfurt-1.ocir.io"),
        (PUBLIC, "docker.io"),
        ("nginx:1.27", "docker.io"),
        ("library/nginx:1.27", "docker.io"),
        ("localhost/game:1", "localhost"),
        ("registry.local:5000/game:1", "registry.local:5000"),
    ],
)
def test_the_script_and_the_tool_read_registries_alike(image: str, host: str) -> None:
    function = re.search(r"^registry_of\(\) \{.*?^\}$", user_data(RECIPE, {}), re.S | re.M)[0]
    printed = subprocess.run(["bash", "-c", f"{function}\nregistry_of {image!r}"], capture_output=True, text=True)
    assert registry(image) == printed.stdout.strip() == host


def stand_ins(tmp_path: Path, failing: str = "", clean_fails: bool = False) -> dict[str, str]:
    """crictl, systemctl, cloud-init, systemd-run, poweroff, sync and sleep that log their calls (with the
    environment crictl got, and what each saw on its command line). crictl fails for `failing`; cloud-init clean
    empties the stand-in cloud-init directory, or fails with `clean_fails`; systemd-run runs its unit at once,
    with the --setenv values it was given."""
    bin_dir, cloud = tmp_path / "bin", tmp_path / "cloud"
    bin_dir.mkdir()
    (cloud / "instances" / "build-1").mkdir(parents=True)
    (cloud / "instances" / "build-1" / "user-data.txt").write_text(f"[...]={SECRET_AUTH}")
    (cloud / "instance").symlink_to(cloud / "instances" / "build-1")
    log = tmp_path / "calls.log"
    for name in ("systemctl", "poweroff", "sync", "sleep"):
        (bin_dir / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
    (bin_dir / "crictl").write_text(
        f'#!/bin/sh\necho "crictl $* auth=${{CRICTL_AUTH:-none}}" >> {log}\n[ "$2" = "{failing}" ] && exit 1\nexit 0\n'
    )
    clean = "exit 1" if clean_fails else 'rm -rf "$PIXELSTREAM_CLOUD_DIR"/instance "$PIXELSTREAM_CLOUD_DIR"/instances'
    (bin_dir / "cloud-init").write_text(
        f'#!/bin/sh\necho "cloud-init $*" >> {log}\n[ "$1" = clean ] && {{ {clean}; }}\nexit 0\n'
    )
    (bin_dir / "systemd-run").write_text(
        f'#!/bin/bash\necho "systemd-run $1 $2" >> {log}\nenvs=()\n'
        'while [[ $1 == --* ]]; do [[ $1 == --setenv=* ]] && envs+=("${1#--setenv=}"); shift; done\n'
        'env "${envs[@]}" "$@"\nexit 0\n'  # --no-block: the unit's own outcome is not systemd-run's
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    return {"PATH": path, "PIXELSTREAM_CONSOLE": str(tmp_path / "console"), "PIXELSTREAM_CLOUD_DIR": str(cloud)}


def run_script(tmp_path: Path, failing: str = "", clean_fails: bool = False) -> tuple[list[str], list[str], str]:
    script = tmp_path / "user-data.sh"
    script.write_text(user_data(RECIPE, {"eu-frankfurt-1.ocir.io": SECRET_AUTH}))
    env = stand_ins(tmp_path, failing, clean_fails)
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    calls = [line.rstrip() for line in (tmp_path / "calls.log").read_text().splitlines()]
    console = (tmp_path / "console").read_text().splitlines()
    return calls, console, done.stdout + done.stderr


def test_the_build_instance_pulls_every_image_then_seals_the_disk_after_cloud_init(tmp_path: Path) -> None:
    calls, console, output = run_script(tmp_path)
    assert calls == [
        "systemctl start crio",
        f"crictl pull {PUBLIC} auth=none",
        f"crictl pull {PRIVATE} auth={SECRET_AUTH}",
        "systemd-run --no-block --unit=pixelstream-seal",
        "cloud-init status --wait",
        "systemctl stop crio",
        "cloud-init clean --logs",
        "sync",
        "poweroff",
    ]
    assert console[-1] == "pixelstream-node-image: READY 2 images", "READY only once the disk is sealed"
    assert not list((tmp_path / "cloud").iterdir()), "the user data, credentials and all, is gone from the disk"
    assert SECRET_AUTH not in "\n".join(console) + output, "the credentials are never printed"


def test_the_credential_reaches_crictl_in_its_environment_not_on_a_command_line(tmp_path: Path) -> None:
    script = user_data(RECIPE, {"eu-frankfurt-1.ocir.io": SECRET_AUTH})
    pull = re.search(r"^pull\(\) \{.*?^\}$", script, re.S | re.M)[0]
    assert 'CRICTL_AUTH="$auth" crictl pull "$1"' in pull and "env " not in pull


def test_a_disk_not_sealed_is_never_called_ready(tmp_path: Path) -> None:
    _, console, _ = run_script(tmp_path, clean_fails=True)
    assert console[-1] == "pixelstream-node-image: FAILED cleaning cloud-init"
    assert not any("READY" in line for line in console)


def test_a_failed_pull_is_retried_reported_and_the_instance_still_cleans_up(tmp_path: Path) -> None:
    calls, console, _ = run_script(tmp_path, failing=PUBLIC)
    assert [c for c in calls if c.startswith("crictl")] == [f"crictl pull {PUBLIC} auth=none"] * 3
    assert "crictl pull " + PRIVATE not in "\n".join(calls), "no image after a failure"
    assert console[-1] == f"pixelstream-node-image: FAILED pulling {PUBLIC}"
    assert calls[-4:] == ["systemctl stop crio", "cloud-init clean --logs", "sync", "poweroff"]
    assert not any(c.startswith("systemd-run") for c in calls), "no seal, so no READY"


# -- the build, against the OCI CLI's own command tree ------------------------------------------------------------

SOURCES = [
    {"source-type": "IMAGE", "source-name": name, "image-id": f"ocid1.image.oc1..{name}"}
    for name in (
        "Oracle-Linux-8.10-Gen2-GPU-2026.09.30-0-OKE-1.34.2-1130",
        "Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130",
        "Oracle-Linux-8.10-2026.10.28-0-OKE-1.34.2-1130",
        "Oracle-Linux-8.10-Gen2-GPU-2026.11.20-0-OKE-1.33.1-1130",
    )
]


@pytest.fixture
def fake_oci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    python = OCI_CLI_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no OCI CLI environment at {OCI_CLI_VENV}: make {OCI_CLI_VENV.name}/.installed (make test does)")
    bin_dir = tmp_path / "oci-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "oci"
    wrapper.write_text(f'#!/bin/sh\nexec "{python}" -W ignore "{ROOT / "tests" / "fake_oci.py"}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_OCI_DIR", str(tmp_path))
    return tmp_path


def scenario(directory: Path, verdict: str) -> None:
    (directory / "scenario.json").write_text(json.dumps({"verdict": verdict, "sources": SOURCES, "stopAfter": 1}))


def calls(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / "calls.jsonl").read_text().splitlines()]


def test_a_build_launches_on_the_newest_oke_gpu_image_captures_the_stopped_instance_and_terminates_it(
    fake_oci: Path,
) -> None:
    scenario(fake_oci, "READY 2 images")
    other = base64.b64encode(b"someone:else").decode()
    auths = {"eu-frankfurt-1.ocir.io": SECRET_AUTH, "other.example": other}
    image = build(RECIPE, PLACEMENT, auths, poll_seconds=0, say=lambda _: None)
    assert image == "ocid1.image.oc1..baked"
    made = calls(fake_oci)
    assert [" ".join(c["argv"][:3]) for c in made] == [
        "ce node-pool-options get",
        "compute instance launch",
        "compute instance get",
        "compute instance get",
        "compute console-history capture",
        "compute console-history get-content",
        "compute image create",
        "compute instance terminate",
    ]
    launch = made[1]
    argv = launch["argv"]
    assert (
        argv[argv.index("--image-id") + 1] == "ocid1.image.oc1..Oracle-Linux-8.10-Gen2-GPU-2026.10.28-0-OKE-1.34.2-1130"
    )
    assert argv[argv.index("--shape") + 1] == "VM.GPU.A10.1"
    assert argv[argv.index("--user-data-file") + 1] == "-", "the user data goes on standard input: no file holds it"
    assert SECRET_AUTH in launch["userData"] and "--wait-for-state" not in argv, "its id at once, for the finally"
    assert other not in launch["userData"], "a registry no image comes from gets no credentials"
    create = made[6]["argv"]
    assert create[create.index("--display-name") + 1] == RECIPE.name


def test_a_failed_build_makes_no_image_and_still_terminates_its_instance(fake_oci: Path) -> None:
    scenario(fake_oci, f"FAILED pulling {PRIVATE}")
    with pytest.raises(NodeImageError, match=f"the build instance reported: FAILED pulling {re.escape(PRIVATE)}"):
        build(RECIPE, PLACEMENT, {}, base_image_id="ocid1.image.oc1..base", poll_seconds=0, say=lambda _: None)
    made = [" ".join(c["argv"][:3]) for c in calls(fake_oci)]
    assert "compute image create" not in made and made[-1] == "compute instance terminate"
    assert "ce node-pool-options get" not in made, "a given base image is used as it is"


def test_an_instance_left_running_is_said_after_what_went_wrong(fake_oci: Path) -> None:
    (fake_oci / "scenario.json").write_text(json.dumps({"verdict": "FAILED starting crio", "terminateFails": True}))
    with pytest.raises(NodeImageError) as raised:
        build(RECIPE, PLACEMENT, {}, base_image_id="ocid1.image.oc1..base", poll_seconds=0, say=lambda _: None)
    message = str(raised.value)
    assert message.startswith("the build instance reported: FAILED starting crio; then oci compute instance")
    assert "NotAuthorizedOrNotFound: Authorization failed or requested resource not found. (opc-request-id req-1)" in (
        message
    ), "the service error's code, message and request id, as the real CLI prints them"
    assert message.endswith("the build instance ocid1.instance.oc1..build may still run, terminate it")


def test_the_stand_in_refuses_what_the_real_cli_would(fake_oci: Path) -> None:
    scenario(fake_oci, "READY 0 images")
    refused = subprocess.run(
        ["oci", "compute", "instance", "get", "--instance-id", "i", "--wait-for-state", "STOPPED"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "No such option '--wait-for-state'" in refused.stderr


# -- what the operator hands it ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not JSON"),
        ('{"credsStore": "desktop"}', "no `auths` object"),
        ('{"auths": {"eu-frankfurt-1.ocir.io": {"email": "x"}}}', "auths.eu-frankfurt-1.ocir.io has neither"),
        ('{"auths": {"eu-frankfurt-1.ocir.io": {"auth": "ab cd"}}}', "auth is not the base64 of user:password"),
        ('{"auths": {"https://": {"auth": "dTpw"}}}', "auths.https://: names no registry host"),
    ],
)
def test_a_bad_pull_secret_is_one_line_naming_the_key(tmp_path: Path, content: str, problem: str) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(content)
    with pytest.raises(NodeImageError, match=re.escape(problem)):
        pull_auths(secret)


def test_a_pull_secret_reads_docker_keys_and_user_password_pairs(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
                    "eu-frankfurt-1.ocir.io": {"username": "tenancy/robot", "password": "s3cret-token"},
                }
            }
        )
    )
    assert pull_auths(secret) == {"docker.io": "aHViOnB3", "eu-frankfurt-1.ocir.io": SECRET_AUTH}


def test_dry_run_prints_the_recipe_and_no_credential(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.json"
    host = registry(recipe("prod", ROOT).images[-1])
    secret.write_text(json.dumps({"auths": {host: {"auth": SECRET_AUTH}, "docker.io": {"auth": SECRET_AUTH}}}))
    assert main(["--stack", "prod", "--dry-run", "--pull-secret", str(secret), "--project-dir", str(ROOT)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("node image pixelstream-gpu-prod-v1.34.2-") and "<from --pull-secret>" in printed
    assert SECRET_AUTH not in printed


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([], "--compartment-id, --subnet-id, --availability-domain: needed for a build (or --dry-run)"),
        (["--dry-run", "--pull-secret", "/nonexistent.json"], "cannot read it"),
        (["--stack", "staging", "--dry-run"], "no stack 'staging'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str], problem: str, capsys) -> None:
    assert main([*argv, "--project-dir", str(ROOT)]) == 2
    assert one_line_error(capsys.readouterr().err, problem)


def test_a_private_registry_without_credentials_is_named(tmp_path: Path, capsys) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"auths": {"other.example": {"auth": SECRET_AUTH}}}))
    assert main(["--stack", "prod", "--dry-run", "--pull-secret", str(secret), "--project-dir", str(ROOT)]) == 2
    error = capsys.readouterr().err
    assert "no credentials for ghcr.io" in error and SECRET_AUTH not in error
