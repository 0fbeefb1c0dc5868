"""The bakes: `make ami` / `make image` argument checks, playbooks/image.yml's profile handling, and
one real bake on this machine: `make image PROFILE=training-cpu` (the container template).

The AMI bake itself needs AWS and cannot run here; its templates are validated offline in
tests/lint/test_packer_validate.py, and here a stand-in `packer` (PACKER=...) records what
scripts/packer_build.sh would run. The training-cpu bake is real (the `training_image` fixture in
conftest.py): Packer 1.6.6 builds a container with podman (through the docker shim), runs the real
roles of the profile (common, efa, pytorch_env) against the local artifact mirror
(tests/fixtures/mirror: a fixture payload stands in for the EFA installer) and the torch CPU wheel
from pip's local wheels, labels the image and exports its Enroot squashfs; the test reads both back.
It replaces the earlier cpu-profile bake of packer/local (same template, same roles but pytorch_env):
one bake proves both. training-cuda cannot be pulled here; its recipe is checked by `packer validate`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml

from helpers import REPO, ansible_env, run, run_playbook

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
    (["ami", "PROFILE=training-cpu", "OS=ubuntu-22.04"],
     "error: unknown profile 'training-cpu': use one of gpu neuron cpu (AMIs are nodes)"),
    (["ami", "PROFILE=gpu", "OS=windows"],
     "error: unknown OS 'windows': use one of ubuntu-22.04 ubuntu-24.04 al2023"),
    (["image", "PROFILE=bogus"], "error: unknown profile 'bogus'"),
    (["image", "PROFILE=training-bogus"],
     "error: unknown profile 'training-bogus': use one of gpu neuron cpu training-cpu training-cuda"),
])
def test_make_rejects_bad_choices_before_packer_starts(fake_packer, args, error) -> None:
    packer, log = fake_packer
    proc = make(*args, packer=packer)
    assert proc.returncode != 0
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error:")]
    assert errors == [error] or (len(errors) == 1 and errors[0].startswith(error)), proc.stdout
    assert not log.exists(), f"packer was started: {log.read_text()}"


def test_make_ami_runs_packer_init_then_build(fake_packer) -> None:
    """The build's SSH rule admits the builder's address only (AWSOME_BUILDER_IP stands in for the
    address AWS's checkip service would give: nothing here reaches the internet)."""
    packer, log = fake_packer
    proc = run(["make", "--no-print-directory", "-o", "setup", "ami", "PROFILE=neuron", "OS=al2023"],
               env=ansible_env(PACKER=str(packer), AWSOME_BUILDER_IP="203.0.113.7\n"), timeout=120)
    assert proc.returncode == 0, proc.stdout
    calls = [line.split(" | ")[0] for line in log.read_text().splitlines()]
    cidrs = 'ssh_source_cidrs=["203.0.113.7/32"]'
    assert calls == [f"init {REPO}/packer/plugins",
                     f"build -var profile=neuron -var os=al2023 -var {cidrs} {REPO}/packer/ami"]


def test_ami_bake_without_the_builders_address_stops_before_packer(fake_packer) -> None:
    """No address to admit (no network to ask, none given): one line, and Packer is not started.
    A CIDR given on the command line is used as it is, without asking."""
    packer, log = fake_packer
    script = [str(REPO / "scripts" / "packer_build.sh"), "ami", "gpu", "ubuntu-22.04"]
    env = ansible_env(PACKER=str(packer))
    env.pop("AWSOME_BUILDER_IP", None)
    proc = run(["unshare", "--net", *script], env=env)  # no network: the address lookup fails here
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines() == [
        "error: cannot find this machine's public address for the build's SSH rule: set AWSOME_BUILDER_IP"
        """ or pass -var 'ssh_source_cidrs=["<address>/32"]'"""], proc.stdout
    assert not log.exists()
    cidrs = 'ssh_source_cidrs=["10.1.0.0/16"]'
    given = run(["unshare", "--net", *script, "-var", cidrs], env=env)
    assert given.returncode == 0, given.stdout
    assert log.read_text().splitlines()[-1].split(" | ")[0] == (
        f"build -var profile=gpu -var os=ubuntu-22.04 -var {cidrs} {REPO}/packer/ami")


def test_make_image_puts_the_podman_shim_on_path(fake_packer) -> None:
    packer, log = fake_packer
    proc = make("image", "PROFILE=cpu", packer=packer)
    assert proc.returncode == 0, proc.stdout
    build = log.read_text().splitlines()[-1]
    assert build == (f"build -var profile=cpu {REPO}/packer/container"
                     f" | docker={REPO}/scripts/docker-podman-shim/docker")


def test_make_image_training_cpu_fetches_the_cpu_wheels_first(fake_packer) -> None:
    """The torch pin of stack/versions.yml and its dependencies land in build/wheels/training-cpu
    (pip's configured wheels here), with a pip wheel for the bake; Packer gets that directory."""
    packer, log = fake_packer
    proc = make("image", "PROFILE=training-cpu", packer=packer)
    assert proc.returncode == 0, proc.stdout
    wheels = REPO / "build" / "wheels" / "training-cpu"
    build = log.read_text().splitlines()[-1].split(" | ")[0]
    assert build == f"build -var profile=training-cpu -var wheel_dir={wheels} {REPO}/packer/container"
    names = sorted(p.name for p in wheels.glob("*.whl"))
    torch = MANIFEST["stack_versions"]["torch"]
    torches = [n for n in names if n.startswith("torch-")]
    assert torches and all(n.startswith(f"torch-{torch}+cpu-cp311-") for n in torches), names
    assert any(n.startswith("numpy-") for n in names) and any(n.startswith("pip-") for n in names), names


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
    ({"image_profile": "bogus"},
     "image_profile bogus is unknown: use one of gpu, neuron, cpu, training-cpu, training-cuda"),
    ({}, "image_profile is not set: use one of gpu, neuron, cpu, training-cpu, training-cuda"),
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
        "training-cpu": {"image_profile": "training-cpu", "image_container": True},
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
        "training-cpu": roles["training-cpu"],
    }
    got = {host: roles.split(",") for host, roles in
           re.findall(r"ok: \[(\S+)\] =>\s+msg: 'image roles: ([^']*)'", proc.stdout)}
    assert got == want
    assert want["gpu-container"] == ["common", "cuda_toolkit", "efa", "nccl"]
    assert want["training-cpu"] == ["common", "efa", "pytorch_env"]


def podman_json(*args: str) -> object:
    return json.loads(run(["podman", *args], check=True).stdout)


@pytest.mark.slow
def test_training_image_records_what_it_imports(training_image) -> None:
    """The image of `make image PROFILE=training-cpu`: its stack record, its labels and what its
    python3 imports agree; no entrypoint; the Enroot squashfs holds the same root file system."""
    ref, sqsh = training_image
    log = (REPO / ".state" / "training-image.log").read_text()
    assert f"image roles: {','.join(PROFILES['image_profile_roles']['training-cpu'])}" in log
    imported = run(["podman", "run", "--rm", ref, "python3", "-c",
                    "import json, dtcase, numpy, torch;"
                    " print(json.dumps([torch.__version__, torch.version.cuda, dtcase.__file__]))"],
                   check=True).stdout
    torch_version, cuda, dtcase_file = json.loads(imported.splitlines()[-1])
    assert torch_version.split("+")[0] == MANIFEST["stack_versions"]["torch"] and cuda is None
    assert dtcase_file.startswith("/usr/local/lib/python3")

    record = json.loads(run(["podman", "run", "--rm", ref, "cat", "/opt/awsome/stack.json"],
                            check=True).stdout)
    assert record["profile"] == "training-cpu"
    # What the record says is installed is what the image itself says: torch as python3 imports it
    # (above), the EFA installer as its own record in the image reads (not the pins the role was given).
    assert record["components"]["torch"] == torch_version and record["components"]["torch_cuda"] == "none"
    efa_record = run(["podman", "run", "--rm", ref, "cat", "/opt/amazon/efa_installed_packages"],
                     check=True).stdout
    efa_installed = re.search(r"EFA installer version: *([0-9.]+)", efa_record).group(1)
    assert record["components"]["efa_installer"] == efa_installed, efa_record
    assert record["built_at"].endswith("Z")

    config = podman_json("image", "inspect", "--format", "{{json .Config}}", ref)
    assert config.get("Entrypoint") in (None, []), "the build's entrypoint must not stay in the image"
    labels = config["Labels"]
    assert labels["org.awsome.profile"] == record["profile"]
    assert labels["org.awsome.torch"] == torch_version
    stack = {k.removeprefix("org.awsome.stack."): v for k, v in labels.items()
             if k.startswith("org.awsome.stack.")}
    # The labels (the pins of the profile's components) agree with what the image holds, read above.
    assert sorted(stack) == sorted(MANIFEST["stack_profiles"]["training-cpu"])
    assert stack["efa_installer"] == efa_installed and stack["torch"] == torch_version.split("+")[0], stack

    assert run(["unsquashfs", "-s", str(sqsh)], check=True).stdout.startswith("Found a valid SQUASHFS 4:0")
    listing = run(["unsquashfs", "-l", "-d", "", str(sqsh)], check=True).stdout.split()
    for path in ("/opt/awsome/stack.json", "/etc/environment", "/etc/rc", "/usr/bin/python3",
                 "/usr/local/lib/python3.11/dist-packages/torch/__init__.py"):
        assert path in listing, path
    with tempfile.TemporaryDirectory() as out:
        run(["unsquashfs", "-q", "-n", "-f", "-d", out, str(sqsh), "opt/awsome/stack.json",
             "etc/environment"], check=True)
        assert json.loads(Path(out, "opt/awsome/stack.json").read_text()) == record
        assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in \
            Path(out, "etc/environment").read_text().splitlines()
