"""Every AWS entry point a user runs fails in one line naming the resource, with no traceback and no change.

Entry points: stage_data.yml, the EC2 inventory (inventories/aws/aws_ec2.yml), the HyperPod inventory,
the lifecycle bundle upload and an infra playbook. Failures: rejected credentials (a wrong secret for a
real key, and an unknown key - moto checks signatures once told to, see Moto.enforce_auth), an
unreachable endpoint, and a missing bucket. Missing buckets/clusters and unreachable endpoints of
stage_data and the HyperPod inventory are tested next to them (test_aws_stage_data.py,
test_hyperpod_inventory.py); the bundle upload's missing bucket in test_lifecycle.py.
The inventories are used as users use them, by a run (run_fsdp.yml -i <inventory>). The EC2 inventory is
amazon.aws.aws_ec2: its message is amazon.aws's own ("Failed to describe instances").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from moto_fixtures import (  # pylint: disable=unused-import  # noqa: F401
    REGION,
    REPO,
    VENV_BIN,
    ansible_env,
    aws_env,
    create_hyperpod_cluster,
    free_port,
    moto,
    moto_session,
    run,
)

DATA, LIFECYCLE = "training-data", "sagemaker-lifecycle-demo"


def through_inventory(inventory: Path, group: str) -> list[str]:
    """A run on the inventory's nodes, as users reach an inventory. Ansible only warns when an inventory
    source fails (unless [inventory] any_unparsed_is_failed is set); the launcher then refuses the empty
    group, so the run fails and the warning carries the inventory's one-line reason."""
    return [str(VENV_BIN / "ansible-playbook"), "playbooks/run_fsdp.yml", "-i", str(inventory),
            "-e", "preset=cpu-tiny", "-e", f"target={group}"]


def entry_point(name: str, endpoint: str, tmp: Path) -> tuple[list[str], dict[str, str], str]:
    """(command, extra environment, the resource its error must name) of one entry point."""
    playbook = [str(VENV_BIN / "ansible-playbook")]
    if name == "stage_data":
        return [*playbook, "playbooks/stage_data.yml", "-c", "local", "-i", "localhost,",
                "-e", "ansible_python_interpreter={{ ansible_playbook_python }}",
                "-e", f"stage_data_src=s3://{DATA}/c4/", "-e", f"stage_data_dest={tmp}/data",
                "-e", f"stage_data_endpoint_url={endpoint}", "-e", "stage_data_poll_s=1"], {}, \
            f"S3 bucket '{DATA}'"
    if name == "ec2_inventory":
        return (through_inventory(REPO / "inventories" / "aws" / "aws_ec2.yml", "cluster_demo"),
                {"AWS_ENDPOINT_URL_EC2": endpoint}, "Failed to describe instances")
    if name == "hyperpod_inventory":
        config = tmp / "demo.hyperpod.yml"
        config.write_text(f"plugin: awsome.distributed_training.hyperpod\nregions: [{REGION}]\n"
                          f"endpoint_url: {endpoint}\ncluster_names: [ml-cluster]\n")
        return (through_inventory(config, "hyperpod_ml_cluster"), {},
                f"hyperpod inventory: SageMaker HyperPod cluster 'ml-cluster' ({REGION})")
    if name == "bundle_upload":
        return [*playbook, "playbooks/hyperpod/upload_lifecycle.yml",
                "-e", f"lifecycle_bundle_dir={REPO}/lifecycle",
                "-e", f"lifecycle_s3_uri=s3://{LIFECYCLE}/ml-cluster/",
                "-e", f"lifecycle_endpoint_url={endpoint}"], {}, f"S3 bucket '{LIFECYCLE}'"
    assert name == "infra"
    return [*playbook, "playbooks/infra/s3_bucket.yml", "-e", "infra_cluster_name=demo",
            "-e", "bucket_name=sagemaker-demo-data", "-e", f"infra_endpoint_url={endpoint}",
            "-e", f"infra_region={REGION}", "-e", f"infra_outputs_dir={tmp}/outputs"], {}, \
        "CloudFormation stack 'demo-bucket'"


ENTRY_POINTS = ["stage_data", "ec2_inventory", "hyperpod_inventory", "bundle_upload", "infra"]


def attempt(name: str, endpoint: str, tmp: Path, credentials: dict[str, str]):
    cmd, extra, resource = entry_point(name, endpoint, tmp)
    env = ansible_env(AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, **credentials, **extra)
    env.pop("AWS_SESSION_TOKEN", None)
    return run(cmd, env=env, timeout=180), resource


def assert_one_line_error(proc, message: str) -> None:
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout, proc.stdout[-3000:]
    assert any(message in line for line in proc.stdout.splitlines()), proc.stdout[-3000:]
    if "playbooks/run_fsdp.yml" in proc.args:  # through_inventory: stopped before any node is touched
        assert "no nodes: inventory group" in proc.stdout, proc.stdout[-3000:]


def seed(moto) -> None:  # noqa: F811
    s3 = moto.client("s3")
    for bucket in (DATA, LIFECYCLE):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=DATA, Key="c4/shard-0.bin", Body=b"x" * 100)
    create_hyperpod_cluster(moto.client("sagemaker"), "ml-cluster", workers=1)


def account(moto) -> dict:  # noqa: F811
    """What a failed attempt must not have changed."""
    s3, cfn = moto.client("s3"), moto.client("cloudformation")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    objects = {b: [o["Key"] for o in s3.list_objects_v2(Bucket=b).get("Contents", [])] for b in buckets}
    return {"buckets": objects,
            "stacks": [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]]}


# A wrong secret for every entry point; an unknown key where the service answers it differently
# (S3 answers both with a bare 403, so for the S3 entry points it would repeat the same path).
@pytest.mark.parametrize(("name", "credentials"), [
    *((name, "wrong_secret") for name in ENTRY_POINTS),
    ("ec2_inventory", "unknown_key"), ("hyperpod_inventory", "unknown_key"), ("infra", "unknown_key"),
])
def test_rejected_credentials(moto, tmp_path, name, credentials):  # noqa: F811
    seed(moto)
    before = account(moto)
    key = moto.admin_key()
    moto.enforce_auth(0)  # from here on every request must be signed by a known key
    assert moto.client("s3", key).list_buckets()["Buckets"], "the admin key itself must be accepted"
    bad = {**key, "AWS_SECRET_ACCESS_KEY": "not-the-secret"} if credentials == "wrong_secret" else \
        {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000", "AWS_SECRET_ACCESS_KEY": key["AWS_SECRET_ACCESS_KEY"]}
    proc, resource = attempt(name, moto.endpoint, tmp_path, bad)
    moto.enforce_auth(float("inf"))
    if name == "ec2_inventory":
        assert_one_line_error(proc, f"{resource}: An error occurred (AuthFailure)")
    else:
        assert_one_line_error(proc, f"{resource}: AWS credentials rejected or not allowed at {moto.endpoint}")
    assert account(moto) == before
    assert not (tmp_path / "data").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("name", ["ec2_inventory", "bundle_upload", "infra"])
def test_unreachable_endpoint(tmp_path, name):
    endpoint = f"http://127.0.0.1:{free_port()}"
    proc, resource = attempt(name, endpoint, tmp_path, {"AWS_ACCESS_KEY_ID": "testing",
                                                        "AWS_SECRET_ACCESS_KEY": "testing"})
    if name == "ec2_inventory":
        assert_one_line_error(proc, f'{resource}: Could not connect to the endpoint URL: "{endpoint}/"')
    else:
        assert_one_line_error(proc, f"{resource}: AWS endpoint unreachable at {endpoint}")
    assert not (tmp_path / "outputs").exists()


def test_infra_refuses_a_missing_lifecycle_bucket(moto, aws_env, tmp_path):  # noqa: F811
    (tmp_path / "demo-vpc.json").write_text('{"PrivateSubnetId": "subnet-1", "SecurityGroupId": "sg-1"}')
    proc = run([str(VENV_BIN / "ansible-playbook"), "playbooks/infra/hyperpod_cluster.yml",
                "-e", "infra_cluster_name=demo", "-e", "hyperpod_lifecycle_s3_uri=s3://sagemaker-absent/lc/",
                "-e", f"infra_endpoint_url={moto.endpoint}", "-e", f"infra_region={REGION}",
                "-e", f"infra_outputs_dir={tmp_path}"], env=ansible_env(**aws_env), timeout=180)
    assert_one_line_error(proc, f"S3 bucket 'sagemaker-absent' does not exist at {moto.endpoint}")
    assert moto.client("cloudformation").list_stacks()["StackSummaries"] == []
