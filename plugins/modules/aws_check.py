#!/usr/bin/python
# Copyright: awsome.distributed_training contributors
# MIT-0 (see galaxy.yml)
"""Check, before anything changes, that AWS answers for one resource: endpoint, credentials, existence."""

from __future__ import annotations

DOCUMENTATION = r"""
module: aws_check
short_description: Fail early, in one line naming the resource, when AWS cannot serve a resource
description:
  - Makes one read-only call about O(name) (C(HeadBucket) for an S3 bucket, C(DescribeStacks) for a
    CloudFormation stack) so that an unreachable endpoint, rejected credentials or a missing bucket stop
    the play with one line naming the resource, before any change is made.
  - A stack that does not exist is not an error unless O(must_exist) is set (plays create stacks).
version_added: 0.1.0
author: awsome.distributed_training developers (@awsome)
options:
  resource:
    description: Kind of resource.
    type: str
    required: true
    choices: [s3_bucket, cloudformation_stack]
  name:
    description: Bucket or stack name.
    type: str
    required: true
  must_exist:
    description: Fail when the resource does not exist. Defaults to true for buckets, false for stacks.
    type: bool
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The lifecycle bucket must exist and be reachable with these credentials
  awsome.distributed_training.aws_check:
    resource: s3_bucket
    name: sagemaker-ml-lifecycle
"""

RETURN = r"""
exists:
  description: Whether the resource exists.
  returned: always
  type: bool
"""

import contextlib

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports the missing SDK
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.awsome.distributed_training.plugins.module_utils.aws_errors import (
    describe_aws_error,
    error_code,
)

LABELS = {"s3_bucket": "S3 bucket", "cloudformation_stack": "CloudFormation stack"}


def absent(resource, exc):
    """True when `exc` only says the resource does not exist."""
    code = error_code(exc)
    if resource == "s3_bucket":
        return code in ("404", "NoSuchBucket", "NotFound")
    message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
    return code == "ValidationError" and "does not exist" in message


def probe(client, resource, name):
    if resource == "s3_bucket":
        client.head_bucket(Bucket=name)
    else:
        client.describe_stacks(StackName=name)


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            resource=dict(type="str", required=True, choices=list(LABELS)),
            name=dict(type="str", required=True),
            must_exist=dict(type="bool"),
        ),
        supports_check_mode=True,
    )
    resource, name = module.params["resource"], module.params["name"]
    must_exist = module.params["must_exist"]
    if must_exist is None:
        must_exist = resource == "s3_bucket"
    label = f"{LABELS[resource]} '{name}'"
    endpoint = module.params.get("endpoint_url")
    service = "s3" if resource == "s3_bucket" else "cloudformation"
    # Few retries and a short connect timeout: a wrong endpoint should fail in seconds, not minutes.
    client = module.client(service, aws_config={"retries": {"max_attempts": 2, "mode": "standard"},
                                                "connect_timeout": 5})
    try:
        probe(client, resource, name)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        if not absent(resource, exc):
            module.fail_json(msg=describe_aws_error(exc, label, endpoint))
        if must_exist:
            module.fail_json(msg=f"{label} does not exist{f' at {endpoint}' if endpoint else ''}")
        module.exit_json(changed=False, exists=False)
    module.exit_json(changed=False, exists=True)


if __name__ == "__main__":
    main()
