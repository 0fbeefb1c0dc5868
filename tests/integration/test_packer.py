"""The bakes: `make ami` / `make image` argument checks, playbooks/image.yml's profile handling, and
one real bake on this machine (packer/local: the container template, cpu profile).

The AMI bake itself needs AWS and cannot run here; its templates are validated offline in
tests/lint/test_packer_validate.py, and here a stand-in `packer` (PACKER=...) records what
scripts/packer_build.sh would run. The local bake is real: Packer 1.6.6 builds a container with
podman (through the docker shim), runs the real roles of the cpu profile against the local
artifact mirror (tests/fixtures/mirror: fixture payloads stand in for the vendor installers) and
the test then reads the stack record out of the produced image.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

from helpers import REPO, ansible_env, run, run_playbook

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "mirror"))
import build_mirror  # noqa: E402
import serve  # noqa: E402

PROFILES = yaml.safe_load((REPO / "playbooks" / "vars" / "image_profiles.yml").read_text())
MANIFEST = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())


@pytest.fixture()
def fake_packer(tmp_path: Path) -> tuple[Path, Path]:
    """A `packer` that says it is 1.11 and records each call (argv and which docker is on PATH)."""
    log = tmp_path / "packer-calls.log"
    fake = tmp_path / "packer"
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = version ]; then echo "Packer v1.11.2"; exit 0; fi
        echo "$* | docker=$(command -v docker)" >> {log}
        """))
    fake.chmod(0o755)
    return fake, log


def make(*args: str, packer: Path) -> subprocess.CompletedProcess:
    # -o: take setup/images as done (the suite's own setup made them); only the target's own recipe runs.
    return run(["make", "--no-print-directory", "-o", "setup", "-o", "images", *args],
               env=ansible_env(PACKER=str(packer)), timeout=120)


@pytest.mark.parametrize(("args", "error"), [
    (["ami", "PROFILE=bogus", "OS=ubuntu-22.04"],
     "error: unknown profile 'bogus': use one of gpu neuron cpu"),
    (["ami", "PROFILE=gpu", "OS=windows"],
     "error: unknown OS 'windows': use one of ubuntu-22.04 ubuntu-24.04 al2023"),
    (["image", "PROFILE=bogus"], "error: unknown profile 'bogus'"),
])
def test_make_rejects_bad_choices_before_packer_starts(fake_packer, args, error) -> None:
    packer, log = fake_packer
    proc = make(*args, packer=packer)
    assert proc.returncode != 0
    assert error in proc.stdout
    assert not log.exists(), f"packer was started: {log.read_text()}"


def test_make_ami_runs_packer_init_then_build(fake_packer) -> None:
    packer, log = fake_packer
    proc = make("ami", "PROFILE=neuron", "OS=al2023", packer=packer)
    assert proc.returncode == 0, proc.stdout
    calls = [line.split(" | ")[0] for line in log.read_text().splitlines()]
    assert calls == [f"init {REPO}/packer/plugins",
                     f"build -var profile=neuron -var os=al2023 {REPO}/packer/ami"]


def test_make_image_puts_the_podman_shim_on_path(fake_packer) -> None:
    packer, log = fake_packer
    proc = make("image", "PROFILE=cpu", packer=packer)
    assert proc.returncode == 0, proc.stdout
    build = log.read_text().splitlines()[-1]
    assert build == (f"build -var profile=cpu {REPO}/packer/container"
                     f" | docker={REPO}/scripts/docker-podman-shim/docker")


def test_ami_bake_needs_packer_1_7() -> None:
    """Debian's Packer 1.6.6 lacks metadata_options: the script says so instead of a parse error."""
    proc = run([str(REPO / "scripts" / "packer_build.sh"), "ami", "gpu", "ubuntu-22.04"])
    assert proc.returncode == 2
    assert "error: AMI bakes need Packer >= 1.7" in proc.stdout and "found: Packer v1.6.6" in proc.stdout


def local_inventory(tmp_path: Path, hosts: dict[str, dict]) -> Path:
    """Inventory of local-connection hosts (each with its own bake variables)."""
    base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inv = {"all": {"hosts": {name: {**base, **hostvars} for name, hostvars in hosts.items()}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


@pytest.mark.parametrize(("hostvars", "error"), [
    ({"image_profile": "bogus"}, "image_profile bogus is unknown: use one of gpu, neuron, cpu"),
    ({}, "image_profile is not set: use one of gpu, neuron, cpu"),
    ({"image_profile": "cpu", "image_roles_skip": ["nvidia_driver"]},
     "image_roles_skip names roles that profile cpu does not apply: nvidia_driver"),
])
def test_image_playbook_refuses_bad_input_before_any_change(tmp_path, hostvars, error) -> None:
    inventory = local_inventory(tmp_path, {"node": hostvars})
    proc = run_playbook("playbooks/image.yml", inventory=inventory, timeout=120)
    assert proc.returncode != 0
    assert error in proc.stdout
    recap = proc.stdout.split("PLAY RECAP")[1]
    assert "changed=0" in recap and "failed=1" in recap


def test_image_playbook_maps_profiles_to_roles_in_order(tmp_path) -> None:
    """What each profile applies, on a host and in a container (host-only roles left out)."""
    cases = {
        "gpu-host": {"image_profile": "gpu"},
        "gpu-container": {"image_profile": "gpu", "image_container": True},
        "neuron-host": {"image_profile": "neuron"},
        "cpu-container-skip": {"image_profile": "cpu", "image_container": True, "image_roles_skip": ["efa"]},
    }
    inventory = local_inventory(tmp_path, cases)
    proc = run_playbook("playbooks/image.yml", "--tags", "image_plan", inventory=inventory, timeout=300)
    assert proc.returncode == 0, proc.stdout
    host_only = PROFILES["image_host_only_roles"]
    roles = PROFILES["image_profile_roles"]
    want = {
        "gpu-host": roles["gpu"],
        "gpu-container": [r for r in roles["gpu"] if r not in host_only],
        "neuron-host": roles["neuron"],
        "cpu-container-skip": [r for r in roles["cpu"] if r not in host_only and r != "efa"],
    }
    got = {host: roles.split(",") for host, roles in
           re.findall(r"ok: \[(\S+)\] =>\s+msg: 'image roles: ([^']*)'", proc.stdout)}
    assert got == want
    assert want["gpu-container"] == ["stack_manifest", "common", "cuda_toolkit", "efa", "nccl"]


@pytest.mark.slow
def test_local_bake_produces_an_image_with_its_stack_record(tmp_path) -> None:
    """packer/local end to end: the real cpu-profile roles in a podman container, then the image's
    /opt/awsome/stack.json names the profile and the versions of stack/versions.yml."""
    mirror = tmp_path / "mirror"
    build_mirror.build(mirror, REPO / "stack" / "versions.yml")
    tag = f"test-{uuid.uuid4().hex[:8]}"
    image = f"localhost/awsome-node-local:{tag}"
    try:
        with serve.serve(mirror) as url:
            overlay = mirror / "mirror_versions.yml"
            proc = run([str(REPO / "scripts" / "packer_build.sh"), "local", "-var", f"artifact_mirror={url}",
                        "-var", f"stack_overlay={overlay}", "-var", f"image_tag={tag}"], timeout=600)
        assert proc.returncode == 0, proc.stdout[-8000:]
        assert "image roles: stack_manifest,common,efa" in proc.stdout
        record = json.loads(run(["podman", "run", "--rm", image, "cat", "/opt/awsome/stack.json"],
                                check=True).stdout)
        assert record["profile"] == "cpu"
        assert record["manifest"] == MANIFEST["stack_versions"]
        assert isinstance(record["components"], dict) and record["built_at"].endswith("Z")
        entrypoint = run(["podman", "image", "inspect", "--format", "{{json .Config.Entrypoint}}", image],
                         check=True).stdout.strip()
        assert entrypoint in ("null", "[]"), "the build's entrypoint must not stay in the image"
        labels = json.loads(run(["podman", "image", "inspect", "--format", "{{json .Labels}}", image],
                                check=True).stdout)
        assert labels["org.awsome.profile"] == "cpu"
        assert labels["org.awsome.stack.efa_installer"] == MANIFEST["stack_versions"]["efa_installer"]
    finally:
        run(["podman", "rmi", "--ignore", image])
