"""A local moto server for the AWS-facing tests (S3, EC2, CloudFormation, SageMaker HyperPod).

Tests talk to it only through `endpoint_url`, exactly like code talks to AWS. The server binds
127.0.0.1 on a free port and is stopped when the test session ends. Import the fixtures you use
into a test module (`from moto_fixtures import moto, aws_env  # noqa: F401`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass

import pytest

from helpers import REPO, VENV_BIN, ansible_env, run, run_playbook  # pylint: disable=unused-import  # noqa: F401  (re-exported)

REGION = "us-east-1"
# moto accepts any credentials unless told to enforce them (Moto.enforce_auth); these only keep boto3
# from looking for real ones.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Moto:
    endpoint: str
    region: str = REGION

    def client(self, service: str, key: dict[str, str] | None = None):
        import boto3

        key = key or CREDENTIALS
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"])

    def enforce_auth(self, after: float) -> None:
        """Check signatures and IAM policies on every request after the next `after` ones (inf: never).

        moto's "IAM-like access control" (INITIAL_NO_AUTH_ACTION_COUNT, set at run time through
        /moto-api/reset-auth): with it on, an unknown access key or a wrong secret is refused as AWS does.
        """
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=str(after).encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=10):
            pass

    def admin_key(self) -> dict[str, str]:
        """A new IAM user allowed everything; returns its credentials as environment variables."""
        iam = self.client("iam")
        iam.create_user(UserName="admin")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def reset(self) -> None:
        """Forget every resource (moto's own reset API), so each test starts from an empty account."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=10):
            pass


def create_hyperpod_cluster(client, name: str, workers: int) -> None:
    """A HyperPod Slurm cluster (controller-machine x1, worker-group-1 x `workers`) in moto."""
    lifecycle = {"SourceS3Uri": "s3://sagemaker-lifecycle/bundle", "OnCreate": "on_create.sh"}
    common = {"LifeCycleConfig": lifecycle,
              "ExecutionRole": "arn:aws:iam::123456789012:role/hyperpod", "ThreadsPerCore": 1}
    client.create_cluster(ClusterName=name, InstanceGroups=[
        {"InstanceGroupName": "controller-machine", "InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
         **common},
        {"InstanceGroupName": "worker-group-1", "InstanceType": "ml.p5.48xlarge", "InstanceCount": workers,
         **common}])


@pytest.fixture(scope="session")
def moto_session(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    env = {**os.environ, **CREDENTIALS}
    with open(log, "w") as out:
        proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.3)
    try:
        yield Moto(endpoint)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def moto(moto_session: Moto) -> Moto:
    """The session's moto server, emptied before the test, accepting any credentials."""
    moto_session.reset()
    moto_session.enforce_auth(float("inf"))
    return moto_session


@pytest.fixture
def aws_env(moto: Moto) -> dict[str, str]:
    """Environment for ansible-playbook / ansible-inventory runs against moto (credentials + region)."""
    return {**CREDENTIALS, "AWS_REGION": moto.region}
