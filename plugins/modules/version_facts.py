#!/usr/bin/python
"""Ansible module: the versions of the node's training stack, read from the system itself."""

from __future__ import annotations

DOCUMENTATION = r"""
module: version_facts
short_description: Versions of the driver, CUDA, NCCL, aws-ofi-nccl, libfabric, EFA, Neuron, Slurm and torch on a node
description:
  - Reads each version from the system, never from the pins in stack/versions.yml; the source of
    each value is returned beside it. A component that is not there is left out.
  - "Driver: /proc/driver/nvidia/version, else modinfo. CUDA: the toolkit's version.json/version.txt.
    NCCL: the host library's file name (libnccl.so.X.Y.Z), else its embedded version string (what
    strings shows). aws-ofi-nccl: the package database, else the plugin library's embedded version.
    libfabric: fi_info --version. EFA installer: /opt/amazon/efa_installed_packages. Neuron: the
    package database (aws-neuronx-dkms, aws-neuronx-runtime-lib). Slurm: sinfo -V. torch: the
    training Python (torch, its CUDA, the NCCL it loads). Image: /opt/awsome/stack.json inside the
    container image when one is given."
options:
  python: {description: Interpreter with torch ('' skips torch)., type: str, default: python3}
  image: {description: Container image whose /opt/awsome/stack.json to read ('' for none)., type: str, default: ''}
  container_cli: {description: "podman or docker, to read the image.", type: str, default: podman}
  lib_dirs:
    description: Directories searched for libnccl and the aws-ofi-nccl plugin.
    type: list
    elements: path
    default: [/usr/lib/x86_64-linux-gnu, /usr/lib/aarch64-linux-gnu, /usr/lib64, /usr/lib, /usr/local/cuda/lib64,
              /usr/local/lib, /opt/nccl/lib, /opt/amazon/ofi-nccl/lib, /opt/amazon/ofi-nccl/lib64,
              /opt/aws-ofi-nccl/lib]
  root: {description: Prefix for every file read (tests point it at a fixture tree)., type: path, default: /}
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Read the node's versions
  awsome.distributed_training.version_facts:
    python: /opt/awsome/venv/bin/python
"""

RETURN = r"""
ansible_facts:
  description: node_versions (component -> version) and node_versions_source (component -> where it was read).
  returned: always
  type: dict
"""

import glob
import json
import os
import re
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.awsome.distributed_training.plugins.module_utils.library_names import (
    libnccl_versions,
)

VERSION = r"(\d+\.\d+(?:\.\d+)*(?:[-+~][0-9A-Za-z.]+)?)"
TORCH = ("import json, torch; c = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
         "'torch_cuda': torch.version.cuda, 'nccl_torch': '.'.join(map(str, torch.cuda.nccl.version())) "
         "if torch.version.cuda else None}))")


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def driver_from_proc(text: str) -> str | None:
    """/proc/driver/nvidia/version: 'NVRM version: NVIDIA UNIX ... Kernel Module for x86_64  580.159.04 ...'."""
    m = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text or "")
    return m.group(1) if m else None


def cuda_from_files(version_json: str | None, version_txt: str | None) -> str | None:
    if version_json:
        try:
            return json.loads(version_json)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            pass
    m = re.search(r"CUDA Version\s+(\d+\.\d+(?:\.\d+)?)", version_txt or "")
    return m.group(1) if m else None


def nccl_from_names(names: list[str]) -> str | None:
    """The highest libnccl.so.X.Y.Z among file names (the unversioned links say nothing)."""
    found = libnccl_versions(names)
    return found[-1] if found else None


def embedded_version(path: str, pattern: bytes) -> str | None:
    """What `strings FILE | grep PATTERN` finds: the first match of a bytes regex with one group."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    m = re.search(pattern, data)
    return m.group(1).decode() if m else None


def libfabric_from_fi_info(out: str) -> str | None:
    m = re.search(r"^libfabric:\s*(\S+)", out or "", re.MULTILINE)
    return m.group(1) if m else None


def efa_installer_from_manifest(text: str | None) -> str | None:
    """/opt/amazon/efa_installed_packages starts with '# EFA installer version: 1.41.0'."""
    m = re.search(r"EFA installer version:\s*" + VERSION, text or "")
    return m.group(1) if m else None


def slurm_from_sinfo(out: str) -> str | None:
    m = re.search(r"^slurm(?:-wlm)?\s+" + VERSION, (out or "").strip(), re.MULTILINE)
    return m.group(1) if m else None


class Reader:
    def __init__(self, module: AnsibleModule | None, root: str = "/", runner=None):
        self.module = module
        self.root = root
        self.runner = runner or self._run
        self.versions: dict[str, str] = {}
        self.sources: dict[str, str] = {}

    def path(self, p: str) -> str:
        return os.path.join(self.root, p.lstrip("/"))

    def _run(self, cmd: list[str]) -> tuple[int, str, str] | None:
        exe = shutil.which(cmd[0]) if "/" not in cmd[0] else cmd[0]
        if not exe:
            return None
        try:
            p = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.returncode, p.stdout, p.stderr

    def put(self, key: str, value: str | None, source: str) -> None:
        if value and key not in self.versions:
            self.versions[key] = value
            self.sources[key] = source

    def package(self, name: str) -> str | None:
        for cmd in (["dpkg-query", "-W", "-f", "${Version}", name], ["rpm", "-q", "--qf", "%{VERSION}", name]):
            res = self.runner(cmd)
            if res and res[0] == 0 and res[1].strip() and "not installed" not in res[1]:
                return res[1].strip()
        return None

    def read_all(self, lib_dirs: list[str], python: str, image: str, cli: str) -> None:
        self.put("driver", driver_from_proc(read(self.path("/proc/driver/nvidia/version")) or ""),
                 "/proc/driver/nvidia/version")
        res = self.runner(["modinfo", "-F", "version", "nvidia"])
        self.put("driver", res[1].strip() if res and res[0] == 0 else None, "modinfo nvidia")
        self.put("cuda", cuda_from_files(read(self.path("/usr/local/cuda/version.json")),
                                         read(self.path("/usr/local/cuda/version.txt"))), "/usr/local/cuda/version.*")
        dirs = [self.path(d) for d in lib_dirs]
        names = [n for d in dirs for n in glob.glob(os.path.join(d, "libnccl.so*"))]
        self.put("nccl_host", nccl_from_names(names), "libnccl.so.X.Y.Z file name")
        for lib in names:
            self.put("nccl_host", embedded_version(lib, rb"NCCL version (\d+\.\d+\.\d+)"), f"strings {lib}")
        for pkg in ("libnccl-ofi", "aws-ofi-nccl"):
            self.put("aws_ofi_nccl", self.package(pkg), f"package {pkg}")
        for lib in (n for d in dirs for n in glob.glob(os.path.join(d, "libnccl-net*.so*"))):
            self.put("aws_ofi_nccl", embedded_version(lib, rb"aws-ofi-nccl[ _-]v?(\d+\.\d+\.\d+[0-9A-Za-z.-]*)"),
                     f"strings {lib}")
        res = self.runner(["fi_info", "--version"]) or self.runner([self.path("/opt/amazon/efa/bin/fi_info"),
                                                                    "--version"])
        self.put("libfabric", libfabric_from_fi_info(res[1]) if res and res[0] == 0 else None, "fi_info --version")
        self.put("efa_installer", efa_installer_from_manifest(read(self.path("/opt/amazon/efa_installed_packages"))),
                 "/opt/amazon/efa_installed_packages")
        self.put("neuron_driver", self.package("aws-neuronx-dkms"), "package aws-neuronx-dkms")
        self.put("neuron_runtime", self.package("aws-neuronx-runtime-lib"), "package aws-neuronx-runtime-lib")
        for sinfo in ("sinfo", self.path("/opt/slurm/bin/sinfo")):
            res = self.runner([sinfo, "-V"])
            self.put("slurm", slurm_from_sinfo(res[1]) if res and res[0] == 0 else None, f"{sinfo} -V")
        if python:
            res = self.runner([python, "-c", TORCH])
            if res and res[0] == 0 and res[1].strip():
                for key, value in json.loads(res[1].strip().splitlines()[-1]).items():
                    self.put(key, value, f"{python}: torch")
        if image:
            res = self.runner([cli, "run", "--rm", "--entrypoint", "cat", image, "/opt/awsome/stack.json"])
            if res and res[0] == 0:
                stack = json.loads(res[1])
                self.put("nccl_image", stack.get("nccl"), f"{image}:/opt/awsome/stack.json")


def main() -> None:
    module = AnsibleModule(
        argument_spec={"python": {"type": "str", "default": "python3"},
                       "image": {"type": "str", "default": ""},
                       "container_cli": {"type": "str", "default": "podman"},
                       "lib_dirs": {"type": "list", "elements": "path",
                                    "default": ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                                                "/usr/lib", "/usr/local/cuda/lib64", "/usr/local/lib", "/opt/nccl/lib",
                                                "/opt/amazon/ofi-nccl/lib", "/opt/amazon/ofi-nccl/lib64",
                                                "/opt/aws-ofi-nccl/lib"]},
                       "root": {"type": "path", "default": "/"}},
        supports_check_mode=True)
    p = module.params
    reader = Reader(module, p["root"])
    reader.read_all(p["lib_dirs"], p["python"], p["image"], p["container_cli"])
    module.exit_json(changed=False, ansible_facts={"node_versions": reader.versions,
                                                   "node_versions_source": reader.sources})


if __name__ == "__main__":
    main()
