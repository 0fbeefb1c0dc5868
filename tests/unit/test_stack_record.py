"""The stack record reads gdrcopy, nccl-tests and the Neuron SDK from what the node holds, not the
pins (plugins/filter/stack_record.py), on inputs shaped like the real ones: gdrcopy 2.4.4's
installed library names and gdrapi.h lines, the strings the role's own grep (roles/nccl/tasks/
record.yml) finds in binaries laid out like nccl-tests' (2.17.x compiles its version in, 2.16.3
does not), the fixture mirror's nccl-tests archive, and dpkg/rpm spellings of Neuron packages.
Each reader is also fed an install that differs from the pin, and must say so.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from ansible_collections.awsome.distributed_training.plugins.filter.stack_record import (
    bundle_installed,
    gdrcopy_installed,
    nccl_installed,
    nccl_tests_installed,
)

REPO = Path(__file__).resolve().parents[2]
MANIFEST = yaml.safe_load((REPO / "stack" / "versions.yml").read_text())
PINS = MANIFEST["stack_versions"]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "mirror"))
import build_mirror  # noqa: E402

# gdrcopy v2.4.4 include/gdrapi.h, the lines around the version (upstream text).
GDRAPI_H = """\
#include <stdint.h> // for standard [u]intX_t types
#include <stddef.h>

#define MAJOR_VERSION_SHIFT     16
#define MINOR_VERSION_MASK      (((uint32_t)1 << MAJOR_VERSION_SHIFT) - 1)

#define GDR_API_MAJOR_VERSION    {major}
#define GDR_API_MINOR_VERSION    {minor}
#define GDR_API_VERSION          ((GDR_API_MAJOR_VERSION << MAJOR_VERSION_SHIFT) | GDR_API_MINOR_VERSION)

#define MINIMUM_GDRDRV_MAJOR_VERSION    2
#define MINIMUM_GDRDRV_MINOR_VERSION    0
"""
# What `make lib_install` leaves in <prefix>/lib (find's paths): the file and its two soname links.
LIB = [f"/opt/gdrcopy/lib/{name}" for name in ("libgdrapi.so", "libgdrapi.so.2", "libgdrapi.so.2.4")]


def test_gdrcopy_is_read_at_the_precision_the_install_has():
    found = gdrcopy_installed(LIB, GDRAPI_H.format(major=2, minor=4))
    assert found == "2.4"  # never padded to the pin 2.4.4: no installed file carries the patch number
    assert found == ".".join(PINS["gdrcopy"].split(".")[:2])
    # one of the two sources alone is enough
    assert gdrcopy_installed(LIB, "") == "2.4"
    assert gdrcopy_installed([], GDRAPI_H.format(major=2, minor=4)) == "2.4"


def test_gdrcopy_other_than_the_pin_is_recorded_as_such():
    newer = ["libgdrapi.so", "libgdrapi.so.2", "libgdrapi.so.2.5"]
    assert gdrcopy_installed(newer, GDRAPI_H.format(major=2, minor=5)) == "2.5"
    # a library of one release beside the header of another: neither is trusted
    assert gdrcopy_installed(newer, GDRAPI_H.format(major=2, minor=4)) == \
        "unknown (libgdrapi.so.2.5, gdrapi.h 2.4)"
    assert gdrcopy_installed(LIB + ["libgdrapi.so.2.3"], "") == "unknown (libraries 2.3, 2.4)"
    assert gdrcopy_installed(["libgdrapi.so", "libgdrapi.so.2"], "/* no version */") == "unknown"


def _grep(binary: Path) -> list[str]:
    """The role's own command (roles/nccl/tasks/record.yml), run on `binary`."""
    tasks = yaml.safe_load((REPO / "roles/nccl/tasks/record.yml").read_text())
    argv = next(t for t in tasks if t["name"] == "Read the version strings compiled into nccl-tests")[
        "ansible.builtin.command"]["argv"]
    proc = subprocess.run([*argv[:-1], str(binary)], capture_output=True, check=False,
                          env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout.decode().splitlines()


def _binary(path: Path, version: str | None) -> Path:
    """An ELF-like file laid out as nccl-tests' .rodata: NUL-terminated strings among bytes that are
    not text, with the header's format string and NCCL_TESTS_VERSION when the release has them."""
    noise = bytes(range(1, 256)) * 8 + b"\xc3(\xff\xfe"
    strings = [b"# nThread %d nGpus %d minBytes %ld maxBytes %ld", b"GLIBC_2.2.5", b"libnccl.so.2",
               b"Cuda compilation tools, release 12.8, V12.8.93"]
    if version:
        strings += [b"# nccl-tests version %s nccl-headers=%d nccl-library=%d\n", version.encode()]
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + noise + b"\x00" + b"\x00".join(strings) + b"\x00" + noise)
    return path


def test_nccl_tests_from_the_string_compiled_into_the_binary(tmp_path):
    found = nccl_tests_installed(_grep(_binary(tmp_path / "all_reduce_perf", "2.17.6")), "nccl-tests-2.16.3/")
    assert found == {"version": "2.17.6", "source": "binary"}  # the binary wins over the archive name


def test_nccl_tests_release_without_a_compiled_version_is_named_by_its_source_archive(tmp_path):
    """2.16.3 (the pin) compiles no version in: the fixture mirror's archive (named like GitHub's
    archive of the tag) says it; an archive of another release says that one."""
    strings = _grep(_binary(tmp_path / "all_reduce_perf", None))
    assert strings == []
    for version in (PINS["nccl_tests"], "2.16.9"):
        spec = {"version": version, "file": f"nccl-tests-{version}.tar.gz"}
        archive = build_mirror.build_fixture("nccl_tests", spec, tmp_path)
        with tarfile.open(archive) as tar:
            top = tar.getnames()[0]
        assert nccl_tests_installed(strings, top) == {"version": version, "source": "source archive"}
    assert nccl_tests_installed(strings, "") == {"version": "unknown", "source": "none"}
    # a format string without exactly one version string next to it says nothing
    assert nccl_tests_installed(["nccl-tests version %s", "2.17.6", "2.18.0"], "")["version"] == "unknown"


NEURON = {"version": PINS["neuron_sdk"], "packages": MANIFEST["stack_packages"]["neuron_sdk"]["versions"]}


def test_neuron_sdk_only_when_every_installed_package_is_the_release_s():
    dpkg = dict(NEURON["packages"])  # dpkg-query spells them as the release lists them
    assert bundle_installed(NEURON, dpkg) == PINS["neuron_sdk"]
    # rpm's VERSION-RELEASE and an epoch are the same version; a container has no dkms package
    rpm = {k: f"{v}-1" for k, v in dpkg.items() if k != "aws-neuronx-dkms"}
    epoch = {**rpm, "aws-neuronx-runtime-lib": "1:" + dpkg["aws-neuronx-runtime-lib"]}
    assert bundle_installed(NEURON, epoch) == PINS["neuron_sdk"]


def test_neuron_sdk_names_the_package_that_differs():
    older_tools = {**NEURON["packages"], "aws-neuronx-tools": "2.24.54.0"}
    listed = NEURON["packages"]["aws-neuronx-tools"]
    assert bundle_installed(NEURON, older_tools) == (
        f"not {PINS['neuron_sdk']}: aws-neuronx-tools 2.24.54.0 ({PINS['neuron_sdk']} lists {listed})")
    # 2.23.9.0 is not a prefix of 2.23.9.01
    dkms = NEURON["packages"]["aws-neuronx-dkms"]
    assert bundle_installed(NEURON, {"aws-neuronx-dkms": dkms + "1"}).startswith("not ")
    assert bundle_installed(NEURON, {}).startswith("unknown")


def test_nccl_from_the_library_a_source_build_installed():
    """`make src.build` installs libnccl.so.X.Y.Z and its two soname links (what the role's find sees)."""
    libs = [f"/opt/nccl/{PINS['nccl']}/lib/{n}" for n in ("libnccl.so", "libnccl.so.2", "libnccl.so.2.27.7")]
    assert nccl_installed(libs) == "2.27.7"  # the library's, whatever the directory (the pin) says
    assert nccl_installed(libs + ["libnccl.so.2.26.5"]) == "unknown (libraries 2.26.5, 2.27.7)"
    assert nccl_installed(libs[:2]) == "unknown"
