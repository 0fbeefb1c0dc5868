"""Train on data the user staged: a real text in a (moto) S3 bucket -> python -m dtcase.prepare ->
playbooks/stage_data.yml -> the fsdp cpu-tiny preset on the 2-node simulated cluster, `--dataset staged`.

The simulated nodes share this machine's file system, and moto listens on this machine's loopback,
which a node's network namespace does not reach: stage_data therefore runs once on this machine
into a directory every node reads, as it runs once onto FSx (`stage_data_shared`) on a real cluster.
The same staged directory with one shard cut short is then refused in one line, before training.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from moto_fixtures import aws_env, moto, moto_session  # pylint: disable=unused-import  # noqa: F401
from test_aws_stage_data import stage
from test_launcher import assert_trained_on_every_node, records, results_of, summary_of

from helpers import REPO, run_playbook

pytestmark = pytest.mark.slow
CORPUS = REPO / "tests" / "fixtures" / "staged_data" / "corpus"
BUCKET = "texts"
STEPS = 24


def test_fsdp_trains_on_staged_shards_and_refuses_a_truncated_one(local_cluster, moto, aws_env, tmp_path):  # noqa: F811
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for file in sorted(CORPUS.glob("*.txt")):
        s3.upload_file(str(file), BUCKET, f"us-documents/raw/{file.name}")

    # Preprocess as a user would: fetch the text, tokenize it into shards, upload the shards.
    raw, shards = tmp_path / "raw", tmp_path / "shards"
    raw.mkdir()
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="us-documents/raw/")["Contents"]:
        s3.download_file(BUCKET, obj["Key"], str(raw / obj["Key"].rsplit("/", 1)[1]))
    prepared = subprocess.run([sys.executable, "-m", "dtcase.prepare", str(raw), "--output", str(shards),
                               "--shard-tokens", "4096"], text=True, capture_output=True, timeout=120,
                              env={"PYTHONPATH": str(REPO / "test_cases" / "common")}, check=False)
    assert prepared.returncode == 0, prepared.stderr
    index = json.loads((shards / "index.json").read_text())
    assert len(index["shards"]) == 4 and prepared.stdout.startswith(f"{shards}: 4 shard(s), ")
    for file in shards.iterdir():
        s3.upload_file(str(file), BUCKET, f"us-documents/shards/{file.name}")

    data = tmp_path / "staged"
    proc, result = stage(f"s3://{BUCKET}/us-documents/shards/", data, moto.endpoint, aws_env)
    assert proc.returncode == 0 and sorted(result["downloaded"]) == sorted(
        f"us-documents/shards/{f.name}" for f in shards.iterdir()), proc.stdout[-3000:]

    request = {"params": {"dataset": "staged", "data_path": str(data), "steps": STEPS, "warmup_steps": 3,
                          "checkpoint_every": 0}}
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", json.dumps(request),
                        inventory=local_cluster)
    assert proc.returncode == 0, proc.stdout[-4000:]
    run_dir = results_of(proc)
    assert_trained_on_every_node(run_dir, steps=STEPS)
    starts = [r for r in records(run_dir) if r["event"] == "start"]
    for start in starts:  # both ranks read the staged shards: 13,719 byte tokens of the three texts
        assert start["data"] == {"layout": "shards", "shards": 4, "tokens": index["tokens"],
                                 "samples": sum((s["tokens"] - 1) // 128 for s in index["shards"]),
                                 "vocab_size": 256}
        assert start["config"]["dataset"] == "staged" and start["config"]["data_path"] == str(data)

    # A shard cut short (a copy that died midway): one line naming it, and no step trained.
    cut = data / index["shards"][2]["file"]
    cut.write_bytes(cut.read_bytes()[:1000])
    proc = run_playbook("playbooks/run_fsdp.yml", "-e", "preset=cpu-tiny", "-e", json.dumps(request),
                        inventory=local_cluster)
    assert proc.returncode != 0
    expected = (f"train.py: error: {cut}: 1000 bytes, the index says 4096 uint16 tokens (8192 bytes): "
                "truncated")
    assert expected in proc.stdout, proc.stdout[-4000:]
    failed = summary_of(results_of(proc))
    # torchrun exits 1 for its rank's 2; the cause is the rank's one error line. Each node refuses the
    # shard itself, unless the other refused first and the launcher stopped it (a loaded machine).
    refused = {node: f"{node}: exited 1: {expected}" for node in ("node1", "node2")}
    stopped = {"node1": "node1: stopped: node2 failed", "node2": "node2: stopped: node1 failed"}
    lines = failed["failures"][:2]
    assert len(lines) == 2, failed["failures"]
    for node, line in zip(("node1", "node2"), lines, strict=True):
        assert line in (refused[node], stopped[node]), lines
    assert set(lines) & set(refused.values()), lines
    assert failed["status"] == "failed" and failed["ranks_reported"] == [] and failed["steps"] == 0
