"""playbooks/stage_data.yml against a local moto S3: parallel, verified, resumable, clear errors.

The node is this machine (connection local); S3 is moto through `endpoint_url`, as any S3 endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from moto_fixtures import ansible_env, aws_env, free_port, moto, moto_session, run_playbook  # pylint: disable=unused-import  # noqa: F401

from helpers import leaked

BUCKET = "training-data"
PART = 5 * 1024 * 1024  # S3's smallest multipart part


def seed(client) -> dict[str, bytes]:
    """Objects of several sizes, one nested, one multipart upload (ETag "<md5-of-md5s>-2")."""
    client.create_bucket(Bucket=BUCKET)
    objects = {f"c4/shard-{i:02d}.bin": os.urandom(1000 * (i + 1)) for i in range(5)}
    objects["c4/tok/vocab.json"] = b'{"a": 1}'
    for key, body in objects.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    big = os.urandom(PART + 4096)
    upload = client.create_multipart_upload(Bucket=BUCKET, Key="c4/big.bin")
    parts = []
    for number, chunk in enumerate((big[:PART], big[PART:]), start=1):
        etag = client.upload_part(Bucket=BUCKET, Key="c4/big.bin", UploadId=upload["UploadId"],
                                  PartNumber=number, Body=chunk)["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    client.complete_multipart_upload(Bucket=BUCKET, Key="c4/big.bin", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})
    objects["c4/big.bin"] = big
    return {key.removeprefix("c4/"): body for key, body in objects.items()}


def stage(src: str, dest: Path, endpoint: str, env: dict, *extra: str):
    """Run the playbook on localhost; return (process, result of the transfer task or None)."""
    proc = run_playbook(
        "playbooks/stage_data.yml", "-c", "local",
        "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
        "-e", f"stage_data_src={src}", "-e", f"stage_data_dest={dest}",
        "-e", f"stage_data_endpoint_url={endpoint}", "-e", "stage_data_workers=3",
        "-e", "stage_data_poll_s=1", "-e", f"stage_data_progress_log={dest.parent}/progress.log", *extra,
        inventory="localhost,", timeout=300,
        env=ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", **env))
    try:
        plays = json.loads(proc.stdout[proc.stdout.index("{"):])["plays"]
    except ValueError:
        return proc, None
    for task in plays[0]["tasks"]:
        if "Wait for the transfer" in task["task"]["name"]:
            return proc, task["hosts"]["localhost"]
    return proc, None


def stamps(dest: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(dest)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in dest.rglob("*") if p.is_file()}


def test_stage_resumes_after_failure_without_refetching(moto, aws_env, tmp_path):  # noqa: F811
    """Also: credentials never reach the output. Secret values planted in the environment the
    module reads (moto takes any) appear in no play output (the JSON callback's results carry every
    module's arguments) and in no progress log, failed run included."""
    secrets = {"AWS_SECRET_ACCESS_KEY": "planted-secret-key-7f3c9a",
               "AWS_SESSION_TOKEN": "planted-token-51be02"}
    aws_env = {**aws_env, **secrets}
    objects = seed(moto.client("s3"))
    dest = tmp_path / "data"
    # A directory where shard-02.bin must go makes that one object fail (as a full disk would).
    (dest / "shard-02.bin" / "blocker").mkdir(parents=True)
    proc, first = stage(f"s3://{BUCKET}/c4/", dest, moto.endpoint, aws_env)
    outputs = [proc.stdout]
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "1 of 7 objects not staged" in first["msg"] and "shard-02.bin" in first["msg"]
    assert sorted(first["downloaded"]) == sorted(f"c4/{k}" for k in objects if k != "shard-02.bin")

    # Simulate a transfer killed mid-file: a truncated final file and a stale .part.
    (dest / "shard-04.bin").write_bytes(objects["shard-04.bin"][:100])
    (dest / "shard-00.bin.part").write_bytes(b"half")
    (dest / "shard-02.bin" / "blocker").rmdir()
    (dest / "shard-02.bin").rmdir()
    before = stamps(dest)

    proc, second = stage(f"s3://{BUCKET}/c4/", dest, moto.endpoint, aws_env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert second["downloaded"] == ["c4/shard-02.bin", "c4/shard-04.bin"]
    assert len(second["present"]) == 5
    after = stamps(dest)
    for key in ("big.bin", "shard-01.bin", "shard-03.bin", "tok/vocab.json"):
        assert after[key] == before[key], f"{key} was rewritten by the resumed run"
    for key, body in objects.items():
        assert hashlib.sha256((dest / key).read_bytes()).digest() == hashlib.sha256(body).digest(), key
    log = (tmp_path / "progress.log").read_text().splitlines()
    assert any("[7/7]" in line for line in log) and any("downloaded c4/shard-02.bin" in line for line in log)

    outputs.append(proc.stdout)
    proc, third = stage(f"s3://{BUCKET}/c4/", dest, moto.endpoint, aws_env)
    assert proc.returncode == 0 and third["downloaded"] == [] and not third["changed"]
    assert stamps(dest) == after
    assert leaked(secrets, *outputs, proc.stdout, json.dumps([first, second, third]),
                  (tmp_path / "progress.log").read_text()) == []


def test_missing_bucket_is_one_line(moto, aws_env, tmp_path):  # noqa: F811
    proc, result = stage("s3://no-such-bucket/x/", tmp_path / "d", moto.endpoint, aws_env)
    assert proc.returncode != 0
    assert result["msg"] == f"S3 bucket 'no-such-bucket' does not exist at {moto.endpoint}"
    assert not (tmp_path / "d").exists()


def test_unreachable_endpoint_is_one_line(aws_env, tmp_path):  # noqa: F811
    endpoint = f"http://127.0.0.1:{free_port()}"
    proc, result = stage(f"s3://{BUCKET}/x/", tmp_path / "d", endpoint, aws_env)
    assert proc.returncode != 0
    assert result["msg"].startswith(f"S3 bucket '{BUCKET}': AWS endpoint unreachable at {endpoint}")
    assert "\n" not in result["msg"] and "Traceback" not in proc.stdout


def test_bad_input_fails_before_any_change(tmp_path):
    proc = run_playbook("playbooks/stage_data.yml", "-c", "local", "-e", "stage_data_src=/not/s3",
                        "-e", f"stage_data_dest={tmp_path}/d", inventory="localhost,", timeout=120)
    assert proc.returncode != 0
    assert "stage_data: need stage_data_src=s3://bucket/prefix (got '/not/s3')" in proc.stdout
    assert not (tmp_path / "d").exists()
