"""Pack an installed collection (a directory with MANIFEST.json, e.g. one the `ansible` PyPI package
bundles) into a collection artifact that `ansible-galaxy collection install --offline` takes.

`ansible-galaxy collection build` needs galaxy.yml, which installed collections no longer have, and
their FILES.json lists files the PyPI package left out (tests/), so FILES.json is written anew from
what is on disk and MANIFEST.json points at it.

    python3 lifecycle/pack_collection.py SRC_DIR OUT_DIR     prints the path of <ns>-<name>-<version>.tar.gz
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile

# tests/ is left out as the PyPI package leaves it out; byte code is never shipped.
SKIP_TOP = {"tests"}
SKIP_DIRS = {"__pycache__"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(name: str, digest: str | None) -> dict:
    kind = "file" if digest else "dir"
    return {"name": name, "ftype": kind, "chksum_type": "sha256" if digest else None,
            "chksum_sha256": digest, "format": 1}


def pack(src: str, out_dir: str) -> str:
    with open(os.path.join(src, "MANIFEST.json"), encoding="utf-8") as fh:
        manifest = json.load(fh)
    info = manifest["collection_info"]
    files = [entry(".", None)]
    contents: dict[str, bytes] = {}
    for top, dirs, names in os.walk(src):
        rel_top = os.path.relpath(top, src)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not (rel_top == "." and d in SKIP_TOP))
        if rel_top != ".":
            files.append(entry(rel_top, None))
        for name in sorted(names):
            rel = os.path.normpath(os.path.join(rel_top, name))
            path = os.path.join(top, name)
            if rel in ("MANIFEST.json", "FILES.json") or name.endswith(".pyc") or os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                contents[rel] = fh.read()
            files.append(entry(rel, sha256(contents[rel])))
    files_json = json.dumps({"files": files, "format": 1}, indent=4).encode()
    manifest["file_manifest_file"] = entry("FILES.json", sha256(files_json))
    manifest_json = json.dumps(manifest, indent=4).encode()

    target = os.path.join(out_dir, f"{info['namespace']}-{info['name']}-{info['version']}.tar.gz")
    with tarfile.open(target, "w:gz") as tar:
        def add(name: str, data: bytes | None) -> None:
            member = tarfile.TarInfo(name)
            member.mtime, member.uid, member.gid, member.uname, member.gname = 0, 0, 0, "", ""
            if data is None:
                member.type, member.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(member)
            else:
                member.size, member.mode = len(data), 0o644
                tar.addfile(member, io.BytesIO(data))

        add("MANIFEST.json", manifest_json)
        add("FILES.json", files_json)
        for item in files[1:]:
            add(item["name"], contents.get(item["name"]))
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(pack(sys.argv[1], sys.argv[2]))
