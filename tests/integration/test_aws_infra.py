"""CloudFormation templates (cfn-lint) and the infra playbooks deployed to moto and deleted again.

moto's CloudFormation implements S3 buckets and the VPC pieces, so the bucket and VPC stacks are
deployed for real here; FSx for Lustre and the HyperPod cluster stacks are checked by cfn-lint only
(moto 5.2.5, the newest release, has no CloudFormation model for AWS::FSx::* or AWS::SageMaker::Cluster:
CreateStack fails with HTTP 500 on their Outputs). Deleting is tested on the bucket stack: moto deletes
only the VPC, subnets and security groups of a stack, so the VPC keeps its gateway attachment, NAT
gateway, routes and endpoint and DeleteStack returns DependencyViolation (docs/aws.md).
"""

from __future__ import annotations

import json

import pytest
from cfnlint.decode import decode
from moto_fixtures import REPO, VENV_BIN, ansible_env, aws_env, moto, moto_session, run, run_playbook  # pylint: disable=unused-import  # noqa: F401

TEMPLATES = sorted((REPO / "cloudformation").glob("*.yaml"))


def test_templates_pass_cfn_lint():
    expected = {"s3_bucket.yaml", "vpc.yaml", "fsx_lustre.yaml", "hyperpod_cluster.yaml"}
    assert {t.name for t in TEMPLATES} >= expected
    proc = run([str(VENV_BIN / "cfn-lint"), *map(str, TEMPLATES)], timeout=300)
    assert proc.returncode == 0, proc.stdout


def test_efa_security_group_allows_all_traffic_within_itself():
    template, errors = decode(str(REPO / "cloudformation" / "vpc.yaml"))
    assert not errors
    res = template["Resources"]
    ingress, egress = res["EfaIngressSelf"]["Properties"], res["EfaEgressSelf"]["Properties"]
    assert ingress["GroupId"] == ingress["SourceSecurityGroupId"] == {"Ref": "EfaSecurityGroup"}
    assert egress["GroupId"] == egress["DestinationSecurityGroupId"] == {"Ref": "EfaSecurityGroup"}
    assert ingress["IpProtocol"] == egress["IpProtocol"] == "-1"


def infra(playbook: str, moto, env: dict, outputs, *extra: str):  # noqa: F811
    return run_playbook(f"playbooks/infra/{playbook}", "-e", "infra_cluster_name=demo",
                        "-e", f"infra_endpoint_url={moto.endpoint}", "-e", f"infra_region={moto.region}",
                        "-e", f"infra_outputs_dir={outputs}", *extra, env=ansible_env(**env), timeout=300)


@pytest.mark.slow
def test_bucket_and_vpc_stacks_deploy_and_delete(moto, aws_env, tmp_path):  # noqa: F811
    proc = infra("s3_bucket.yml", moto, aws_env, tmp_path, "-e", "bucket_name=sagemaker-demo-data")
    assert proc.returncode == 0, proc.stdout[-3000:]
    s3 = moto.client("s3")
    # (moto's CloudFormation creates the bucket but ignores its versioning/encryption properties.)
    assert "sagemaker-demo-data" in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    bucket_outputs = json.loads((tmp_path / "demo-bucket.json").read_text())
    assert bucket_outputs["BucketName"] == "sagemaker-demo-data"

    proc = infra("vpc.yml", moto, aws_env, tmp_path, "-e", "vpc_availability_zone=us-east-1a")
    assert proc.returncode == 0, proc.stdout[-3000:]
    outputs = json.loads((tmp_path / "demo-vpc.json").read_text())
    ec2 = moto.client("ec2")
    group = ec2.describe_security_groups(GroupIds=[outputs["SecurityGroupId"]])["SecurityGroups"][0]
    assert group["VpcId"] == outputs["VpcId"]
    self_in = [p for p in group["IpPermissions"] if p["IpProtocol"] == "-1"
               and any(g["GroupId"] == group["GroupId"] for g in p["UserIdGroupPairs"])]
    assert self_in, group["IpPermissions"]
    subnet = ec2.describe_subnets(SubnetIds=[outputs["PrivateSubnetId"]])["Subnets"][0]
    assert subnet["AvailabilityZone"] == "us-east-1a" and subnet["CidrBlock"] == "10.0.16.0/20"

    again = infra("vpc.yml", moto, aws_env, tmp_path, "-e", "vpc_availability_zone=us-east-1a")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]

    proc = infra("s3_bucket.yml", moto, aws_env, tmp_path, "-e", "infra_state=absent")
    assert proc.returncode == 0, proc.stdout[-3000:]
    stacks = moto.client("cloudformation").list_stacks()["StackSummaries"]
    assert sorted(s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE") == ["demo-vpc"]
    assert not (tmp_path / "demo-bucket.json").exists()
    # DeletionPolicy: Retain - data outlives the stack.
    assert "sagemaker-demo-data" in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_vpc_without_availability_zone_is_refused(moto, aws_env, tmp_path):  # noqa: F811
    proc = infra("vpc.yml", moto, aws_env, tmp_path)
    assert proc.returncode != 0
    assert "need infra_cluster_name (letters, digits, dashes) and vpc_availability_zone" in proc.stdout
    assert moto.client("cloudformation").list_stacks()["StackSummaries"] == []
