"""`packer validate` of every Packer template, for every OS x profile, with no network.

Packer here is Debian's 1.6.6. Each Packer call runs in a fresh network namespace (`unshare -n`):
it cannot reach AWS, so a template that needed AWS (or credentials) to validate fails here instead
of calling out. Packer 1.6.6 lacks two settings of the AMI source that newer Packer has
(`metadata_options`, `imds_support`, kept between `# packer>=1.7:begin/end` markers): the full
validate runs on a copy of packer/ami without those lines, and a separate test checks what the
marked lines require (IMDSv2 only).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from helpers import REPO, ansible_env

PROFILES = ["gpu", "neuron", "cpu", "training-cpu", "training-cuda"]
NODE_PROFILES = ["gpu", "neuron", "cpu"]  # what an AMI can be; training-* are container images only
OSES = ["ubuntu-22.04", "ubuntu-24.04", "al2023"]
MARKED = re.compile(r"^[ \t]*# packer>=1\.7:begin.*?^[ \t]*# packer>=1\.7:end[^\n]*\n", re.S | re.M)
MANIFEST = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())
# What scripts/packer_build.sh passes: the builder's address (a documentation address here).
BUILDER_CIDRS = 'ssh_source_cidrs=["203.0.113.7/32"]'


def profile_versions(profile: str) -> dict[str, str]:
    """What stack/versions.yml pins for the components of one profile."""
    return {c: str(MANIFEST["stack_versions"][c]) for c in MANIFEST["stack_profiles"][profile]}


def packer(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run packer from the repository root with no network (a new, empty network namespace)."""
    return subprocess.run(["unshare", "--net", "packer", *args], input=stdin, cwd=REPO,
                          env=ansible_env(), text=True, capture_output=True, timeout=120, check=False)


def console(template: str | Path, expr: str, *var_args: str) -> str:
    """Evaluate an HCL expression of a template (its variables, locals and the manifest it reads)."""
    proc = packer("console", *var_args, str(template), stdin=expr + "\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def ami_v166() -> Iterator[Path]:
    """packer/ami without the lines only Packer >= 1.7 understands, two levels below the repo root
    (the templates find stack/versions.yml and playbooks/ at ../..)."""
    state = REPO / ".state"
    state.mkdir(exist_ok=True)
    copy = Path(tempfile.mkdtemp(prefix="packer-ami-v166-", dir=state))
    for src in (REPO / "packer" / "ami").glob("*.pkr.hcl"):
        (copy / src.name).write_text(MARKED.sub("", src.read_text()))
    yield copy
    shutil.rmtree(copy)


def validate_args(ami_dir: Path) -> list[tuple[str, ...]]:
    """Every validate the suite runs: the AMI for each OS x profile, the container templates."""
    return ([("-var", f"profile={p}", "-var", f"os={o}", "-var", BUILDER_CIDRS, str(ami_dir))
             for p in NODE_PROFILES for o in OSES]
            + [("-var", f"profile={p}", "packer/container") for p in PROFILES] + [("packer/local",)])


@pytest.fixture(scope="module")
def validations(ami_v166: Path) -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """Run the validates concurrently (each spends most of its time starting ansible-playbook)."""
    args = validate_args(ami_v166)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(args, pool.map(lambda a: packer("validate", *a), args), strict=True))


@pytest.mark.parametrize("os_name", OSES)
@pytest.mark.parametrize("profile", NODE_PROFILES)
def test_ami_template_validates(validations, ami_v166: Path, profile: str, os_name: str) -> None:
    ami_args = ("-var", f"profile={profile}", "-var", f"os={os_name}", "-var", BUILDER_CIDRS, str(ami_v166))
    proc = validations[ami_args]
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("cidrs", [None, '["0.0.0.0/0"]'])
def test_ami_ssh_is_open_only_to_a_named_address(ami_v166: Path, cidrs: str | None) -> None:
    """Packer opens the temporary security group to 0.0.0.0/0 when no CIDR is given: the template
    refuses both, so the builder's address (scripts/packer_build.sh finds it) must be named."""
    extra = ("-var", f"ssh_source_cidrs={cidrs}") if cidrs else ()
    proc = packer("validate", "-var", "profile=cpu", *extra, str(ami_v166))
    assert proc.returncode != 0
    assert "The ssh_source_cidrs variable must list the builder's address" in proc.stdout + proc.stderr


def test_ami_template_parses_with_its_packer_1_7_lines() -> None:
    """The shipped files, marked lines included, are valid HCL for Packer."""
    proc = packer("validate", "-syntax-only", "packer/ami")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ami_marked_lines_require_imdsv2_and_nothing_else() -> None:
    text = (REPO / "packer" / "ami" / "sources.pkr.hcl").read_text()
    marked = MARKED.findall(text)
    assert len(marked) == 1, "expected one block between the packer>=1.7 markers"
    settings = dict(re.findall(r'^\s*(\w+)\s*=\s*"?([^"\n#]+?)"?\s*(?:#.*)?$', marked[0], re.M))
    assert settings == {"http_endpoint": "enabled", "http_tokens": "required",
                        "http_put_response_hop_limit": "1", "imds_support": "v2.0"}


@pytest.mark.parametrize("profile", PROFILES)
def test_container_template_validates(validations, profile: str) -> None:
    proc = validations[("-var", f"profile={profile}", "packer/container")]
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_local_template_validates(validations) -> None:
    proc = validations[("packer/local",)]
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("var", "value"), [("profile", "bogus"), ("os", "windows")])
def test_ami_template_rejects_unknown_choices(ami_v166: Path, var: str, value: str) -> None:
    proc = packer("validate", "-var", f"{var}={value}", "-var", BUILDER_CIDRS, str(ami_v166))
    assert proc.returncode != 0
    assert f"The {var} variable must be one of" in proc.stdout + proc.stderr


@pytest.mark.parametrize("profile", NODE_PROFILES)
def test_ami_tags_carry_the_profile_stack_versions(profile: str) -> None:
    tags = json.loads(console("packer/ami", "jsonencode(local.ami_tags)", "-var", f"profile={profile}",
                              "-var", "os=ubuntu-24.04"))
    want = {f"awsome:stack:{c}": v for c, v in profile_versions(profile).items()}
    assert {k: v for k, v in tags.items() if k.startswith("awsome:stack:")} == want
    assert tags["awsome:profile"] == profile and tags["awsome:os"] == "ubuntu-24.04"
    assert tags["Name"].startswith(f"awsome-dt-{profile}-ubuntu-24.04-")


@pytest.mark.parametrize("profile", ["gpu", "training-cuda"])
def test_container_labels_carry_the_stack_versions(profile: str) -> None:
    labels = json.loads(console("packer/container", "jsonencode(local.image_labels)",
                                "-var", f"profile={profile}"))
    want = {f"org.awsome.stack.{c}": v for c, v in profile_versions(profile).items()}
    assert labels == {**want, "org.awsome.profile": profile}


TRAINING_EXPR = ("jsonencode([local.image, local.base_image, var.pull || local.profile_image.pull,"
                 " local.entrypoint, local.volumes, local.training_ansible_args, local.sqsh])")


def test_training_cpu_bake_settings() -> None:
    """make image PROFILE=training-cpu: the local Debian base, the host's wheels mounted read-only
    (not part of the image), the squashfs under build/images."""
    got = json.loads(console("packer/container", TRAINING_EXPR, "-var", "profile=training-cpu",
                             "-var", "wheel_dir=/w"))
    assert got == ["localhost/awsome-training:cpu", "localhost/debian-systemd:bookworm", False,
                   ["--systemd=always", "--entrypoint=/sbin/init"], {"/w": "/tmp/awsome-wheels:ro"},
                   ["-e", "pytorch_env_flavour=cpu", "-e", "pytorch_env_wheel_dir=/tmp/awsome-wheels"],
                   f"{REPO}/build/images/awsome-training+cpu.sqsh"]


def test_training_cuda_bake_pulls_the_cuda_base_of_the_manifest() -> None:
    """The CUDA flavour starts from NVIDIA's image of the pinned CUDA (no systemd there), installs the
    CUDA torch from the flavour's index (no wheel dir), and can be pointed elsewhere."""
    cuda = MANIFEST["stack_versions"]["cuda"]
    got = json.loads(console("packer/container", TRAINING_EXPR, "-var", "profile=training-cuda"))
    assert got == ["localhost/awsome-training:cuda", f"docker.io/nvidia/cuda:{cuda}-cudnn-devel-ubuntu22.04",
                   True, ["--entrypoint=/bin/sh"], {}, ["-e", "pytorch_env_flavour=cuda"],
                   f"{REPO}/build/images/awsome-training+cuda.sqsh"]
    other = json.loads(console("packer/container", TRAINING_EXPR, "-var", "profile=training-cuda",
                               "-var", "base_image=registry.example/cuda:x", "-var", "sqsh_dir=/s",
                               "-var", "image_tag=c2"))
    assert other[0] == "localhost/awsome-training:c2" and other[1] == "registry.example/cuda:x"
    assert other[6] == "/s/awsome-training+c2.sqsh"


@pytest.mark.parametrize(("profile", "instance_type"),
                         [("gpu", "g5.2xlarge"), ("neuron", "trn1.2xlarge"), ("cpu", "c6i.2xlarge")])
def test_ami_instance_type_per_profile_and_override(profile: str, instance_type: str) -> None:
    assert console("packer/ami", "local.instance_type", "-var", f"profile={profile}") == instance_type
    assert console("packer/ami", "local.instance_type", "-var", f"profile={profile}",
                   "-var", "instance_type=p5.48xlarge") == "p5.48xlarge"


def test_ami_network_defaults_leave_the_choice_to_packer() -> None:
    """No subnet or security group is hard-coded: empty defaults mean Packer's temporary ones."""
    assert console("packer/ami", 'jsonencode([var.subnet_id, var.security_group_id])') == '["",""]'
    sources = (REPO / "packer" / "ami" / "sources.pkr.hcl").read_text()
    assert not re.search(r'\b(subnet|sg)-[0-9a-f]{8,}', sources)
    assert re.search(r'volume_type\s*=\s*"gp3"', sources)
    assert re.search(r"iops\s*=\s*var\.volume_iops", sources)
    assert re.search(r"throughput\s*=\s*var\.volume_throughput", sources)


def test_local_bake_is_cpu_on_the_host_network_with_systemd() -> None:
    expr = "jsonencode([var.profile, local.network, var.image_repository, local.entrypoint])"
    got = console("packer/local", expr)
    assert json.loads(got) == ["cpu", ["--network=host"], "localhost/awsome-node-local",
                               ["--systemd=always", "--entrypoint=/sbin/init"]]
    plain = console("packer/container", "jsonencode(local.entrypoint)", "-var", "container_init=false")
    assert json.loads(plain) == ["--entrypoint=/bin/sh"]


@pytest.mark.parametrize("directory", ["ami", "container", "local", "common"])
def test_packer_fmt(directory: str) -> None:
    proc = packer("fmt", "-check", "-diff", f"packer/{directory}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_profile_and_os_names_agree_everywhere() -> None:
    """scripts/packer_build.sh, the templates' validation rules and playbooks/image.yml's profile map."""
    script = (REPO / "scripts" / "packer_build.sh").read_text()
    assert re.search(r"^profiles=\((.*)\)$", script, re.M).group(1).split() == PROFILES
    assert re.search(r"^node_profiles=\((.*)\)$", script, re.M).group(1).split() == NODE_PROFILES
    assert list(MANIFEST["stack_profiles"]) == PROFILES
    assert re.search(r"^oses=\((.*)\)$", script, re.M).group(1).split() == OSES
    roles = yaml.safe_load((REPO / "playbooks" / "vars" / "image_profiles.yml").read_text())
    assert list(roles["image_profile_roles"]) == PROFILES
    # `profile` is declared once, in the file every template links (packer/common).
    declared = [p for p in (REPO / "packer").rglob("*.pkr.hcl")
                if not p.is_symlink() and 'variable "profile"' in p.read_text()]
    assert declared == [REPO / "packer" / "common" / "stack.pkr.hcl"]
    assert f"contains({hcl_list(PROFILES)}, var.profile)" in declared[0].read_text()
    assert f"contains({hcl_list(OSES)}, var.os)" in (REPO / "packer/ami/variables.pkr.hcl").read_text()


def hcl_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"
