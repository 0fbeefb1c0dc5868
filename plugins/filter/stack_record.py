"""Filters that turn what a node says about an installed component into its stack record entry:
`gdrcopy_installed`, `nccl_installed`, `nccl_tests_installed`, `bundle_installed`. Each reads the system's own
evidence (file names, headers, strings compiled into a binary, package versions), never the pin.
"""

from __future__ import annotations

import os
import re

from ansible_collections.awsome.distributed_training.plugins.module_utils.library_names import (
    libnccl_versions,
)

# Documentation: the adjacent <filter name>.yml (ansible-doc reads it).

UNKNOWN = "unknown"


def gdrcopy_installed(lib_files, header: str = "") -> str:
    """GDRCopy's version as its install says it: the library file libgdrapi.so.<major>.<minor>
    (the soname links .so and .so.<major> say less) and gdrapi.h's GDR_API_MAJOR/MINOR_VERSION.
    Upstream carries only major.minor there, so that is the precision recorded; when the two
    disagree (a library of one release beside a header of another) neither is trusted."""
    found = {m.group(1) for name in lib_files or []
             if (m := re.fullmatch(r"libgdrapi\.so\.(\d+\.\d+)", os.path.basename(str(name))))}
    major = re.search(r"^\s*#\s*define\s+GDR_API_MAJOR_VERSION\s+(\d+)\b", header or "", re.MULTILINE)
    minor = re.search(r"^\s*#\s*define\s+GDR_API_MINOR_VERSION\s+(\d+)\b", header or "", re.MULTILINE)
    from_header = f"{major.group(1)}.{minor.group(1)}" if major and minor else None
    if len(found) > 1:
        return f"{UNKNOWN} (libraries {', '.join(sorted(found))})"
    lib = next(iter(found), None)
    if lib and from_header and lib != from_header:
        return f"{UNKNOWN} (libgdrapi.so.{lib}, gdrapi.h {from_header})"
    return lib or from_header or UNKNOWN


def nccl_installed(lib_files) -> str:
    """NCCL's version as a source build installs it: the library file libnccl.so.<major>.<minor>.<patch>
    (NCCL's make names it from its own makefiles/version.mk; the soname links say less)."""
    found = libnccl_versions(lib_files)
    if len(found) > 1:
        return f"{UNKNOWN} (libraries {', '.join(found)})"
    return found[0] if found else UNKNOWN


# The header line nccl-tests prints from 2.17.4 on ("# nccl-tests version 2.17.6 nccl-headers=...");
# its format string in a binary means NCCL_TESTS_VERSION was compiled in beside it.
NCCL_TESTS_FORMAT = "nccl-tests version %s"


def nccl_tests_installed(binary_strings, archive_top: str = "") -> dict:
    """nccl-tests' version and where it was read: {version, source}.

    `binary_strings`: what the role's grep found in the built all_reduce_perf (the format string
    above and every NUL-delimited X.Y.Z string). A binary that carries the format string and one
    X.Y.Z string (NCCL_TESTS_VERSION) says its version. Releases before 2.17.4 (2.16.3 among them)
    compile no version in; then the version is the one the built source archive names itself by
    (its top directory, 'nccl-tests-2.16.3/', which GitHub derives from the release tag)."""
    lines = [str(s).strip() for s in binary_strings or []]
    if NCCL_TESTS_FORMAT in lines:
        versions = sorted({s for s in lines if re.fullmatch(r"\d+\.\d+\.\d+", s)})
        if len(versions) == 1:
            return {"version": versions[0], "source": "binary"}
    top = str(archive_top or "").strip().split("/", 1)[0]
    m = re.fullmatch(r"nccl-tests-v?(\d+\.\d+\.\d+)", top)
    if m:
        return {"version": m.group(1), "source": "source archive"}
    return {"version": UNKNOWN, "source": "none"}


def _same(installed: str, listed: str) -> bool:
    """A package's installed version is the listed one, give or take an epoch and a package
    release (rpm's '2.23.9.0-dkms', apt's '1:2.23.9.0')."""
    have = re.sub(r"^\d+:", "", str(installed))
    return have == str(listed) or have.startswith(f"{listed}-")


def bundle_installed(bundle: dict, installed: dict) -> str:
    """A bundle release (e.g. the Neuron SDK) as its installed packages say it.

    `bundle`: {version, packages: {package: the version the release lists}}; `installed`: package ->
    version from the package database. The bundle's version only when every listed package that is
    installed has its listed version; otherwise which package differs."""
    version, packages = str(bundle["version"]), dict(bundle.get("packages") or {})
    have = {k: v for k, v in (installed or {}).items() if v}
    checked = [p for p in sorted(packages) if p in have]
    if not checked:
        return f"{UNKNOWN} (none of {version}'s packages is installed)"
    off = [f"{p} {have[p]} ({version} lists {packages[p]})"
           for p in checked if not _same(have[p], packages[p])]
    return f"not {version}: {'; '.join(off)}" if off else version


class FilterModule:
    def filters(self):
        return {"gdrcopy_installed": gdrcopy_installed, "nccl_installed": nccl_installed,
                "nccl_tests_installed": nccl_tests_installed,
                "bundle_installed": bundle_installed}
