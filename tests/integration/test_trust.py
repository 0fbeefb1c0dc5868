"""Trust on the simulated cluster: the launcher's preflight module refuses planted directories.

The module runs on a node over SSH exactly as the launcher's preflight task calls it (one call per
node); the rule itself is unit-tested in tests/unit/test_trusted_dirs.py. The nodes share this
machine's file system, so a directory made here is the node's directory.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import REPO, VENV_BIN, ansible_env

pytestmark = pytest.mark.slow
NOBODY = 65534


def test_preflight_refuses_a_planted_or_open_directory_in_one_line(local_cluster, tmp_path):
    base = tmp_path / "node-dirs"
    base.mkdir(mode=0o755)
    good = base / "runs"
    good.mkdir(mode=0o755)
    planted = base / "envs"  # made first by another user, as in a world-writable /var/tmp
    planted.mkdir(mode=0o755)
    os.chown(planted, NOBODY, NOBODY)
    shared = base / "shared"  # the shared root, checked through the marker the head writes
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    (shared / ".marker").write_text("run\n")  # seen, so only the mode is wrong
    args = {"python": "/usr/bin/python3", "framework_module": "json",
            "directories": [str(good), str(planted / "venv"), str(base / "new" / "run")],
            "shared_marker": str(shared / ".marker")}
    env = ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(local_cluster), "node1", "-m",
                           "awsome.distributed_training.launch_preflight", "-a", json.dumps(args)],
                          cwd=REPO, env=env, text=True, capture_output=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["node1"]
    assert result["problems"] == [
        f"{planted} belongs to nobody (uid {NOBODY}), not root: another user could have planted it",
        f"{shared} is writable by everyone (mode 0777): another user could swap what is in it",
    ], result
