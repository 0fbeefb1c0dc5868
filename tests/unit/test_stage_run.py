"""The one archive the stage_run action sends to a node (roles/launcher/tasks/stage.yml): what goes in,
with which modes, and that it unpacks with plain `tar` as the node does. The transfer over SSH is
exercised by every launch in tests/integration."""

from __future__ import annotations

import subprocess

from ansible_collections.awsome.distributed_training.plugins.action.stage_run import pack


def test_the_archive_unpacks_with_tar_into_the_staged_layout(tmp_path):
    src = tmp_path / "case" / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "train.py").write_text("print('train')\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o750)
    (src / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    (src / "stale.pyc").write_bytes(b"\0")
    (tmp_path / "stop_job.sh").write_text("#!/bin/sh\nexit 0\n")
    data = pack({"code/case/src": str(src)},
                [{"dest": "code/case/testcase.json", "content": '{"name": "case"}\n'},
                 {"dest": "launch.sh", "content": "#!/bin/sh\necho launch\n", "mode": "0755"},
                 {"dest": "stop_job.sh", "src": str(tmp_path / "stop_job.sh"), "mode": "0755"}])
    dest = tmp_path / "node"
    dest.mkdir()
    subprocess.run(["tar", "-xzf", "-", "--no-same-owner", "-C", str(dest)], input=data, check=True)
    staged = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert staged == ["code/case/src/run.sh", "code/case/src/train.py", "code/case/testcase.json",
                      "launch.sh", "stop_job.sh"]  # no bytecode
    assert (dest / "code/case/src/train.py").read_text() == "print('train')\n"
    assert (dest / "code/case/testcase.json").read_text() == '{"name": "case"}\n'
    assert (dest / "launch.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "stop_job.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "code/case/testcase.json").stat().st_mode & 0o777 == 0o644
    assert (dest / "code/case/src/run.sh").stat().st_mode & 0o777 == 0o750  # the tree keeps its modes
