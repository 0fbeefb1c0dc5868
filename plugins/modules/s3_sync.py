#!/usr/bin/python
# Copyright: awsome.distributed_training contributors
# MIT-0 (see galaxy.yml)
"""Copy an S3 prefix to a local or shared (FSx) directory: parallel, resumable, verified."""

from __future__ import annotations

DOCUMENTATION = r"""
module: s3_sync
short_description: Stage an S3 prefix onto a node-local or shared directory, resumably
description:
  - Lists every object under O(src) and downloads it below O(dest), keeping the key's path
    relative to the prefix.
  - Parallel (O(workers) objects at a time). Resumable - a file already present with the object's size
    and checksum is skipped, a download goes to C(<file>.part) and is renamed only after it is
    verified, so an interrupted run leaves no half file under the final name.
  - Verified - size, and the MD5 ETag (single-part uploads) or the multipart ETag (recomputed from the
    part size of part 1). Objects whose ETag is not a content hash (SSE-KMS) are checked by size only.
  - Writes one progress line per finished object to O(progress_log) when given.
version_added: 0.1.0
author: awsome.distributed_training developers (@awsome)
options:
  src:
    description: Source as C(s3://bucket/prefix) (the prefix may be empty).
    type: str
    required: true
  dest:
    description: Destination directory; created when missing.
    type: path
    required: true
  workers:
    description: Objects downloaded at the same time.
    type: int
    default: 8
  verify:
    description: Verify C(checksum) (size and ETag) or C(size) only.
    type: str
    choices: [checksum, size]
    default: checksum
  progress_log:
    description: File that receives one progress line per finished object (appended).
    type: path
  mode:
    description: Permissions of downloaded files.
    type: raw
    default: "0644"
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Stage the tokenized dataset onto FSx once for the whole cluster
  awsome.distributed_training.s3_sync:
    src: s3://my-datasets/c4/tokenized/
    dest: /fsx/data/c4
    workers: 16
    progress_log: /var/log/awsome/stage_data.log
  run_once: true
"""

RETURN = r"""
objects:
  description: Objects under the prefix.
  returned: always
  type: int
downloaded:
  description: Keys downloaded by this run.
  returned: always
  type: list
  elements: str
present:
  description: Keys already present and verified, so not downloaded again.
  returned: always
  type: list
  elements: str
bytes_downloaded:
  description: Bytes fetched by this run.
  returned: always
  type: int
failures:
  description: Keys that could not be staged, with the reason.
  returned: when some failed
  type: dict
"""

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

try:
    import botocore
    from boto3.s3.transfer import TransferConfig
except ImportError:
    pass  # AnsibleAWSModule reports the missing SDK

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.awsome.distributed_training.plugins.module_utils.aws_errors import describe_aws_error

CHUNK = 8 * 1024 * 1024
ATTEMPTS = 3


def parse_s3_uri(uri):
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ValueError(f"src must look like s3://bucket/prefix, got {uri!r}")
    bucket, _sep, prefix = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"src has no bucket name: {uri!r}")
    return bucket, prefix


def local_path(dest, prefix, key):
    rel = key[len(prefix):].lstrip("/") if prefix else key
    if not rel or rel.endswith("/"):
        return None  # "directory" placeholder objects
    path = os.path.normpath(os.path.join(dest, rel))
    if not path.startswith(os.path.normpath(dest) + os.sep):
        raise ValueError(f"object key {key!r} escapes the destination directory")
    return path


def etag_matches(path, etag, part_size):
    """True when the file's MD5 (or multipart MD5 with `part_size`) equals the S3 ETag."""
    etag = etag.strip('"')
    if "-" not in etag:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                digest.update(block)
        return digest.hexdigest() == etag
    parts = []
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(part_size), b""):
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    combined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(parts)}" == etag


class Stager:
    def __init__(self, module, client, bucket, prefix):
        self.module = module
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.params = module.params
        mode = module.params["mode"]
        self.mode = mode if isinstance(mode, int) else int(str(mode), 8)
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.bytes = 0
        self.started = time.monotonic()

    def list_objects(self):
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            yield from page.get("Contents", [])

    def part_size(self, obj):
        head = self.client.head_object(Bucket=self.bucket, Key=obj["Key"], PartNumber=1)
        return head["ContentLength"]

    def verified(self, path, obj):
        if not os.path.isfile(path) or os.path.getsize(path) != obj["Size"]:
            return False
        etag = obj.get("ETag", "").strip('"')
        if self.params["verify"] == "size" or not etag or len(etag.split("-")[0]) != 32:
            return True
        return etag_matches(path, etag, self.part_size(obj) if "-" in etag else 0)

    def fetch(self, obj, path):
        """Download to <path>.part, verify, rename; retry a bad copy. Returns None or the reason."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = path + ".part"
        reason = None
        for _attempt in range(ATTEMPTS):
            try:
                self.client.download_file(self.bucket, obj["Key"], partial,
                                          Config=TransferConfig(max_concurrency=4, use_threads=True))
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
                reason = describe_aws_error(exc, f"s3://{self.bucket}/{obj['Key']}")
                continue
            if self.verified(partial, obj):
                os.chmod(partial, self.mode)
                try:
                    os.replace(partial, path)
                except OSError as exc:
                    return f"{path}: {exc.strerror}"
                return None
            reason = f"s3://{self.bucket}/{obj['Key']}: downloaded copy failed size/checksum verification"
        if os.path.exists(partial):
            os.unlink(partial)
        return reason

    def progress(self, action, key, size):
        with self.lock:
            self.done += 1
            self.bytes += size if action == "downloaded" else 0
            elapsed = max(time.monotonic() - self.started, 1e-6)
            line = (f"[{self.done}/{self.total}] {action} {key} "
                    f"({self.bytes / 1048576:.1f} MiB fetched, {self.bytes / 1048576 / elapsed:.1f} MiB/s)")
            if self.params["progress_log"]:
                with open(self.params["progress_log"], "a") as log:
                    log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

    def stage_one(self, obj, path):
        if self.verified(path, obj):
            self.progress("skipped", obj["Key"], obj["Size"])
            return "present", None
        if self.module.check_mode:
            return "downloaded", None
        reason = self.fetch(obj, path)
        self.progress("failed" if reason else "downloaded", obj["Key"], 0 if reason else obj["Size"])
        return ("failed", reason) if reason else ("downloaded", None)

    def run(self, dest):
        objects = []
        for obj in self.list_objects():
            path = local_path(dest, self.prefix, obj["Key"])
            if path:
                objects.append((obj, path))
        self.total = len(objects)
        result = {"objects": len(objects), "downloaded": [], "present": [], "bytes_downloaded": 0}
        failed = {}
        with ThreadPoolExecutor(max_workers=self.params["workers"]) as pool:
            futures = {pool.submit(self.stage_one, obj, path): obj for obj, path in objects}
            for future in as_completed(futures):
                obj = futures[future]
                outcome, reason = future.result()
                if outcome == "failed":
                    failed[obj["Key"]] = reason
                else:
                    result[outcome].append(obj["Key"])
                    if outcome == "downloaded":
                        result["bytes_downloaded"] += obj["Size"]
        result["downloaded"].sort()
        result["present"].sort()
        return result, failed


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            src=dict(type="str", required=True),
            dest=dict(type="path", required=True),
            workers=dict(type="int", default=8),
            verify=dict(type="str", choices=["checksum", "size"], default="checksum"),
            progress_log=dict(type="path"),
            mode=dict(type="raw", default="0644"),
        ),
        supports_check_mode=True,
    )
    try:
        bucket, prefix = parse_s3_uri(module.params["src"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if module.params["workers"] < 1:
        module.fail_json(msg=f"workers must be at least 1, got {module.params['workers']}")
    endpoint = module.params.get("endpoint_url")
    aws_config = {"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 10}
    client = module.client("s3", aws_config=aws_config)
    try:
        client.head_bucket(Bucket=bucket)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json(msg=describe_aws_error(exc, f"S3 bucket '{bucket}'", endpoint))

    dest = module.params["dest"]
    if not module.check_mode:
        try:
            os.makedirs(dest, exist_ok=True)
        except OSError as exc:
            module.fail_json(msg=f"destination {dest}: {exc.strerror}")
    stager = Stager(module, client, bucket, prefix)
    try:
        result, failed = stager.run(dest)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json(msg=describe_aws_error(exc, f"S3 prefix s3://{bucket}/{prefix}", endpoint))
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    changed = bool(result["downloaded"])
    if failed:
        first = next(iter(sorted(failed.items())))
        module.fail_json(msg=f"{len(failed)} of {result['objects']} objects not staged; first: {first[1]}",
                         failures=failed, changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
