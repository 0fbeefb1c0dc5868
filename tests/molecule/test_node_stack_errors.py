"""Bad input to the node stack fails with one clear line BEFORE anything changes.

Cheap checks on localhost (no container): roles/_artifact against the TEST FIXTURE mirror (stand-ins
for vendor payloads) with a temporary cache dir, and _stack's platform and compatibility
checks with faked platform facts (tests/molecule/playbooks/library/fake_facts.py). Nothing here
installs anything on the machine: every role run is expected to stop at its checks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml
from moto_fixtures import aws_env, moto, moto_session  # pylint: disable=unused-import  # noqa: F401  (fixtures)

from helpers import REPO, VENV_BIN, ansible_env, run_playbook

sys.path.insert(0, str(REPO / "tests" / "fixtures" / "mirror"))
import build_apt_repos  # noqa: E402
import serve  # noqa: E402

ARTIFACT = "tests/molecule/playbooks/artifact.yml"
STACK = "tests/molecule/playbooks/stack_role.yml"
PINS = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())
DRIVER = PINS["stack_artifacts"]["nvidia_driver"]
PY = ["-e", "ansible_python_interpreter=/usr/bin/python3"]


def _flat(text: str) -> str:
    """Output with line wrapping undone (the yaml callback folds long messages)."""
    return " ".join(text.split())


def _error(stdout: str) -> str:
    """The message of the task that failed (the last FAILED! msg)."""
    msgs = re.findall(r"\[ERROR\]: Task failed: (?:Action failed|Module failed): (.*)", stdout)
    return msgs[-1] if msgs else stdout[-3000:]


def _fetch(mirror, tmp_path, *extra):
    return run_playbook(ARTIFACT, "-i", "localhost,", *PY, "-e", f"artifact_cache_dir={tmp_path}",
                        "-e", f"artifact_mirror={mirror.url}", *extra, timeout=300)


def test_fetch_verifies_and_caches(artifact_mirror, tmp_path):
    pinned = ["-e", "artifact_id=nvidia_driver", "-e", f"@{artifact_mirror.overlay}"]
    first = _fetch(artifact_mirror, tmp_path, *pinned)
    assert first.returncode == 0, first.stdout[-3000:]
    path = tmp_path / "nvidia_driver" / DRIVER["version"] / DRIVER["file"]
    assert f"artifact_path={path} changed=True" in _flat(first.stdout)
    assert path.read_bytes() == (artifact_mirror.directory / DRIVER["file"]).read_bytes()
    # Second run: the cached file has the pinned checksum, nothing is fetched.
    again = _fetch(artifact_mirror, tmp_path, *pinned)
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"artifact_path={path} changed=False" in _flat(again.stdout)


def test_fetch_from_a_local_path_mirror(artifact_mirror, tmp_path):
    proc = _fetch(artifact_mirror, tmp_path, "-e", "artifact_id=gdrcopy", "-e", f"@{artifact_mirror.overlay}",
                  "-e", f"artifact_mirror={artifact_mirror.directory}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "gdrcopy" / PINS["stack_versions"]["gdrcopy"] / "gdrcopy-2.4.4.tar.gz").is_file()


def test_bad_checksum_names_artifact_and_url(artifact_mirror, tmp_path):
    bad = "0" * 64
    override = json.dumps({"stack_artifacts_override": {"nvidia_driver": {"sha256": bad}}})
    proc = _fetch(artifact_mirror, tmp_path, "-e", "artifact_id=nvidia_driver", "-e", override,
                  "-e", "artifact_retries=1")
    assert proc.returncode != 0
    pins = yaml.safe_load(artifact_mirror.overlay.read_text())["stack_artifacts_override"]
    real = pins["nvidia_driver"]["sha256"]
    assert _error(proc.stdout) == (
        f"artifact 'nvidia_driver' {DRIVER['version']} from {artifact_mirror.url}/{DRIVER['file']}: "
        f"checksum mismatch: expected sha256:{bad}, got {real}")
    assert not (tmp_path / "nvidia_driver" / DRIVER["version"] / DRIVER["file"]).exists()


def test_missing_artifact_names_artifact_and_url(artifact_mirror, tmp_path):
    # An artifact given as a spec (no manifest id) that the mirror does not hold.
    spec = json.dumps({"artifact_spec": {"file": "absent-1.0.tar.gz", "version": "1.0", "sha256": "1" * 64}})
    proc = _fetch(artifact_mirror, tmp_path, "-e", spec)
    assert proc.returncode != 0
    assert _error(proc.stdout) == (
        f"artifact 'absent-1.0.tar.gz' 1.0 from {artifact_mirror.url}/absent-1.0.tar.gz: "
        "not found (HTTP 404)")


GDRCOPY = PINS["stack_artifacts"]["gdrcopy"]


def _fetch_flaky(artifact_mirror, tmp_path, fail_first, retries):
    """gdrcopy from a mirror answering 503 to its first `fail_first` requests (-1: to all), with
    delays 1, 3, 9, ... s between attempts. Returns the run and the mirror's (time, path) log."""
    with serve.serve_flaky(artifact_mirror.directory, fail_first) as (url, requests):
        proc = run_playbook(ARTIFACT, "-i", "localhost,", *PY, "-e", f"artifact_cache_dir={tmp_path}",
                            "-e", f"artifact_mirror={url}", "-e", "artifact_id=gdrcopy",
                            "-e", f"@{artifact_mirror.overlay}", "-e", f"artifact_retries={retries}",
                            "-e", "artifact_delay=1", "-e", "artifact_backoff=3", timeout=300)
        return proc, url, list(requests)


def test_fetch_retries_a_flaky_mirror_with_growing_delays(artifact_mirror, tmp_path):
    proc, _unused, requests = _fetch_flaky(artifact_mirror, tmp_path, fail_first=2, retries=3)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [path for _unused, path in requests] == [f"/{GDRCOPY['file']}"] * 3  # 2 refused, the 3rd served
    gaps = [later - earlier
            for (earlier, _unused), (later, _unused) in zip(requests, requests[1:], strict=False)]
    # Waited 1 s, then 3 s (plus a module run's overhead each time): the delay grows.
    assert gaps[0] >= 1 and gaps[1] >= 3 and gaps[1] - gaps[0] >= 1.5, gaps
    cached = tmp_path / "gdrcopy" / GDRCOPY["version"] / GDRCOPY["file"]
    assert cached.read_bytes() == (artifact_mirror.directory / GDRCOPY["file"]).read_bytes()


def test_fetch_gives_up_on_a_mirror_that_always_fails(artifact_mirror, tmp_path):
    proc, url, requests = _fetch_flaky(artifact_mirror, tmp_path, fail_first=-1, retries=2)
    assert proc.returncode != 0
    assert len(requests) == 3  # the first attempt and 2 retries
    assert _error(proc.stdout).startswith(
        f"artifact 'gdrcopy' {GDRCOPY['version']} from {url}/{GDRCOPY['file']}: "
        "download failed after 3 attempts (HTTP 503 "), proc.stdout[-3000:]
    assert not (tmp_path / "gdrcopy" / GDRCOPY["version"] / GDRCOPY["file"]).exists()


def test_fetch_from_an_s3_mirror(artifact_mirror, tmp_path, moto, aws_env):  # noqa: F811
    """s3://bucket/prefix mirrors (amazon.aws.s3_object against a local moto server), sha256 checked."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="stack-mirror")
    s3.upload_file(str(artifact_mirror.directory / DRIVER["file"]), "stack-mirror", f"v1/{DRIVER['file']}")
    args = ["-i", "localhost,", "-e", f"ansible_python_interpreter={VENV_BIN / 'python'}",
            "-e", f"artifact_cache_dir={tmp_path}", "-e", "artifact_mirror=s3://stack-mirror/v1",
            "-e", f"artifact_s3_endpoint_url={moto.endpoint}", "-e", "artifact_id=nvidia_driver"]
    env = ansible_env(**aws_env)
    good = run_playbook(ARTIFACT, *args, "-e", f"@{artifact_mirror.overlay}", env=env, timeout=300)
    assert good.returncode == 0, good.stdout[-3000:]
    path = tmp_path / "nvidia_driver" / DRIVER["version"] / DRIVER["file"]
    assert path.read_bytes() == (artifact_mirror.directory / DRIVER["file"]).read_bytes()
    bad = json.dumps({"stack_artifacts_override": {"nvidia_driver": {"sha256": "2" * 64}}})
    proc = run_playbook(ARTIFACT, *args, "-e", bad, "-e", f"artifact_cache_dir={tmp_path}/bad",
                        env=env, timeout=300)
    assert proc.returncode != 0
    assert _error(proc.stdout).startswith(
        f"artifact 'nvidia_driver' {DRIVER['version']} from s3://stack-mirror/v1/{DRIVER['file']}: "
        f"checksum mismatch: expected sha256 {'2' * 64}, got ")
    assert not (tmp_path / "bad" / "nvidia_driver" / DRIVER["version"] / DRIVER["file"]).exists()


KEY_ID = "nvidia_container_toolkit_key"
KEY = PINS["stack_artifacts"][KEY_ID]


@pytest.fixture(scope="module")
def key_mirror(tmp_path_factory):
    """A mirror serving the fixture apt repositories' signing key (a throw-away OpenPGP key made by
    build_apt_repos.py) under the key artifacts' file names, with its fingerprint read by gpg."""
    out = tmp_path_factory.mktemp("key-mirror")
    build_apt_repos.build(out, REPO / "stack" / "versions.yml")
    home = tmp_path_factory.mktemp("gnupg")
    listing = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--with-colons", "--show-keys",
                              str(out / "apt" / "archive-key.asc")], check=True, capture_output=True,
                             text=True).stdout
    fingerprint = re.search(r"^pub:.*\nfpr:+([0-9A-F]{40}):", listing, re.M).group(1)
    with serve.serve(out) as url:
        yield SimpleNamespace(url=url, directory=out, fingerprint=fingerprint)


def test_key_verified_by_fingerprint_is_cached(key_mirror, tmp_path):
    """The test key, served under the toolkit key's name and pinned by its fingerprint only (written
    as gpg prints it, spaced, here in lower case), is fetched, cached, and not changed on a rerun."""
    fpr = key_mirror.fingerprint
    spaced = " ".join(fpr[i:i + 4] for i in range(0, 40, 4)).lower()
    pin = json.dumps({"stack_artifacts_override": {KEY_ID: {"fingerprint": spaced}}})
    first = _fetch(key_mirror, tmp_path, "-e", f"artifact_id={KEY_ID}", "-e", pin)
    assert first.returncode == 0, first.stdout[-3000:]
    path = tmp_path / KEY_ID / KEY["version"] / KEY["file"]
    assert f"artifact_path={path} changed=True" in _flat(first.stdout)
    assert path.read_bytes() == (key_mirror.directory / KEY["file"]).read_bytes()
    again = _fetch(key_mirror, tmp_path, "-e", f"artifact_id={KEY_ID}", "-e", pin)
    assert again.returncode == 0, again.stdout[-3000:]
    assert f"artifact_path={path} changed=False" in _flat(again.stdout)
    assert "changed=0" in again.stdout[again.stdout.index("PLAY RECAP"):]


@pytest.mark.parametrize("case", ["manifest_fingerprint", "wrong_sha256"])
def test_wrong_key_fails_and_leaves_nothing_in_the_cache(key_mirror, tmp_path, case):
    """The manifest pins NVIDIA's real fingerprint: the test key served under that name is refused.
    With the right fingerprint but a wrong sha256 (both pinned: both checked), the sha256 check
    refuses it. Either way no file reaches the cache."""
    if case == "manifest_fingerprint":
        extra = []
        expected = f"fingerprint mismatch: expected {KEY['fingerprint']}, found {key_mirror.fingerprint}"
    else:
        both = {"fingerprint": key_mirror.fingerprint, "sha256": "3" * 64}
        extra = ["-e", json.dumps({"stack_artifacts_override": {KEY_ID: both}})]
        expected = f"checksum mismatch: expected sha256:{'3' * 64}, got "
    proc = _fetch(key_mirror, tmp_path, "-e", f"artifact_id={KEY_ID}", *extra)
    assert proc.returncode != 0
    src = f"{key_mirror.url}/{KEY['file']}"
    assert _error(proc.stdout).startswith(f"artifact '{KEY_ID}' {KEY['version']} from {src}: {expected}"), \
        proc.stdout[-3000:]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(("extra", "message"), [
    (["-e", "artifact_id=nope"], "artifact 'nope': not in stack_artifacts (known: aws_ofi_nccl, cuda,"),
    (["-e", "artifact_id=nccl"],
     "artifact 'nccl': no checksum pinned (sha256, checksum_url or fingerprint); pin it with "
     "stack_artifacts_override"),
    (["-e", json.dumps({"artifact_spec": {"file": "k.asc", "fingerprint": "C95B 321B 61E8 8C18 09C4"}})],
     "artifact 'k.asc': fingerprint C95B 321B 61E8 8C18 09C4 is not an OpenPGP fingerprint (40 hex digits)"),
    (["-e", "artifact_id=gdrcopy", "-e", "artifact_mirror=ftp://mirror.invalid/x"],
     "artifact 'gdrcopy': artifact_mirror ftp://mirror.invalid/x must be http(s)://, s3://bucket/prefix,"),
])
def test_bad_artifact_input(artifact_mirror, tmp_path, extra, message):
    proc = _fetch(artifact_mirror, tmp_path, *extra)
    assert proc.returncode != 0
    assert message in _error(proc.stdout), proc.stdout[-3000:]
    assert not any(tmp_path.iterdir())  # failed before making the cache dir


def _stack(*extra):
    return run_playbook(STACK, "-i", "localhost,", *extra, timeout=300)


@pytest.mark.parametrize(("facts", "message"), [
    ({"distribution": "Gentoo", "distribution_version": "2.15", "distribution_major_version": "2",
      "os_family": "Gentoo", "architecture": "x86_64"},
     "unsupported platform Gentoo 2.15 x86_64: the node stack supports Ubuntu 22.04, Ubuntu 24.04,"
     " Amazon 2023, Debian 12 on x86_64/aarch64"),
    ({"distribution": "Ubuntu", "distribution_version": "22.04", "distribution_major_version": "22",
      "os_family": "Debian", "architecture": "ppc64le"},
     "unsupported platform Ubuntu 22.04 ppc64le: the node stack supports"),
])
def test_unsupported_platform(facts, message):
    proc = _stack("-e", json.dumps({"fake_facts": facts, "node_role": "common"}))
    assert proc.returncode != 0
    assert message in _error(proc.stdout), proc.stdout[-3000:]
    assert "changed=0" in proc.stdout[proc.stdout.index("PLAY RECAP"):]


@pytest.mark.parametrize(("overrides", "messages"), [
    ({"stack_versions_override": {"nvidia_driver": "550.54.15"},
      "stack_artifacts_override": {"nvidia_driver": {"version": "550.54.15"}}},
     ["incompatible stack: cuda 12.8.1 needs nvidia_driver >=570.124.06, but nvidia_driver is 550.54.15"
      " (rule cuda-12.8.1-driver)",
      "incompatible stack: fabricmanager 570.172.08 vs nvidia_driver 550.54.15 must be the same version"]),
    ({"stack_versions_override": {"aws_ofi_nccl": "1.12.0"},
      "stack_artifacts_override": {"aws_ofi_nccl": {"version": "1.12.0"}}},
     ["incompatible stack: nccl 2.26.5-1 needs aws_ofi_nccl >=1.14.0, but aws_ofi_nccl is 1.12.0"
      " (rule ofi-nccl-2.26)"]),
    ({"stack_versions_override": {"cuda": "12.9.0"}},
     ["inconsistent manifest: stack_artifacts.cuda.version is 12.8.1 but stack_versions.cuda is 12.9.0"]),
])
def test_incompatible_versions_refused(overrides, messages):
    proc = _stack("-e", json.dumps({**overrides, "node_role": "nvidia_driver"}))
    assert proc.returncode != 0
    error = _error(proc.stdout)
    for message in messages:
        assert message in error, proc.stdout[-3000:]
    assert "changed=0" in proc.stdout[proc.stdout.index("PLAY RECAP"):]


def test_open_modules_refused_on_pre_turing_gpus():
    proc = _stack("-e", json.dumps({"node_role": "nvidia_driver",
                                    "nvidia_driver_instance_type": "p3.2xlarge",
                                    "nvidia_driver_kernel_module_type": "open"}))
    assert proc.returncode != 0
    assert "open kernel modules do not support the pre-Turing GPUs of p3.2xlarge" in _error(proc.stdout)
    assert "changed=0" in proc.stdout[proc.stdout.index("PLAY RECAP"):]


COLL = "awsome.distributed_training"
INCLUDED = "is internal: roles of the collection include it (include_role); plays do not apply it"


@pytest.mark.parametrize(("role", "message"), [
    (f"{COLL}._stack", "is internal: the node-stack roles run it through their meta dependency;"
                       " apply those roles instead"),
    (f"{COLL}._artifact", INCLUDED),
    (f"{COLL}._vendor_repo", INCLUDED),
    (f"{COLL}._exporter_common",
     "is internal: apply efa_exporter, slurm_exporter or gpu_exporter, which depend on it"),
], ids=["_stack", "_artifact", "_vendor_repo", "_exporter_common"])
def test_internal_role_refuses_a_direct_call(role, message):
    """An internal role applied by a play stops at its first task with one line."""
    proc = run_playbook("tests/molecule/playbooks/internal_role.yml", "-i", "localhost,",
                        "-e", f"internal_role={role}", "-e", "vendor_repo_name=x", timeout=120)
    assert proc.returncode != 0
    assert _flat(_error(proc.stdout)) == f"{role} {message}", proc.stdout[-3000:]
    assert "changed=0" in proc.stdout[proc.stdout.index("PLAY RECAP"):]
