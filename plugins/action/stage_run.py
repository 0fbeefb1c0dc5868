"""Stage a run's files on one node in a single transfer: one tar.gz over one SSH command.

The launcher used to copy the case's code file by file (a stat, a transfer and a module call per
file: about 100 s for 25 files on two simulated nodes) and then the parameter declarations, the stop
script and the launch script one task each. This action packs all of it on the controller and
unpacks it with `tar` on the node, in one round trip and without starting Python there.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase


def _skip_bytecode(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    # Bytecode the controller's Python left beside the sources is of no use to the node's Python.
    return None if "__pycache__" in info.name.split("/") or info.name.endswith(".pyc") else info


def _owned_by_nobody(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # tar --no-same-owner gives the files to whoever unpacks them; keep the archive neutral too.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(trees: dict[str, str], files: list[dict]) -> bytes:
    """A gzip'd tar of every tree (dest: src directory, bytecode left out) and file (content or src)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", dereference=True, compresslevel=6) as tar:
        for dest, src in trees.items():
            tar.add(src, arcname=dest, filter=lambda i: _skip_bytecode(_owned_by_nobody(i)))
        for item in files:
            if "content" in item:
                data = to_bytes(item["content"])
            else:
                with open(item["src"], "rb") as fh:
                    data = fh.read()
            info = _owned_by_nobody(tarfile.TarInfo(item["dest"]))
            info.size, info.mode = len(data), int(str(item.get("mode", "0644")), 8)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dest", "dirs", "trees", "files", "remove"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        dest = args["dest"]
        trees = dict(args.get("trees") or {})
        for src in trees.values():
            if not os.path.isdir(src):
                raise AnsibleActionFail(f"stage_run: {src} is not a directory on the controller")
        files = []
        for item in args.get("files") or []:
            if "src" in item:  # a role's files/ (or a path relative to the playbook)
                item = {**item, "src": self._find_needle("files", item["src"])}
            files.append(item)
        data = pack(trees, files)
        q = shlex.quote
        dirs = " ".join(q(d) for d in [dest, *(args.get("dirs") or [])])
        remove = " ".join(q(p) for p in args.get("remove") or [])
        cmd = (f"mkdir -p -- {dirs} && tar -xzf - --no-same-owner -C {q(dest)}"
               + (f" && rm -f -- {remove}" if remove else ""))
        res = self._low_level_execute_command(f"/bin/sh -c {q(cmd)}", in_data=data)
        if res.get("rc") != 0:
            err = (res.get("stderr") or res.get("stdout") or "").strip().splitlines()
            raise AnsibleActionFail(f"staging into {dest} failed (exit {res.get('rc')}): "
                                    + (err[-1] if err else "no output"))
        result.update(changed=True, dest=dest, bytes=len(data))
        return result
