"""One-line AWS error messages (module_utils/aws_errors.py) and aws_check's "does not exist" test."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from ansible_collections.awsome.distributed_training.plugins.module_utils.aws_errors import describe_aws_error
from ansible_collections.awsome.distributed_training.plugins.modules import aws_check

END = "http://s3.example:9000"


def client_error(code: str, message: str = "", operation: str = "HeadBucket") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(("exc", "expected"), [
    (client_error("404"), f"S3 bucket 'd' does not exist at {END}"),
    (client_error("403"), f"S3 bucket 'd': AWS credentials rejected or not allowed at {END} (403)"),
    (client_error("SignatureDoesNotMatch", "The request signature we calculated does not match\nsecond line"),
     f"S3 bucket 'd': AWS credentials rejected or not allowed at {END} (SignatureDoesNotMatch)"),
    (client_error("InvalidSignatureException"),
     f"S3 bucket 'd': AWS credentials rejected or not allowed at {END} (InvalidSignatureException)"),
    (EndpointConnectionError(endpoint_url=END), f"S3 bucket 'd': AWS endpoint unreachable at {END} "
                                                "(EndpointConnectionError)"),
    (NoCredentialsError(), "S3 bucket 'd': no AWS credentials found (set a profile, "
                           "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance role)"),
    (NoRegionError(), "S3 bucket 'd': no AWS region given (set region or AWS_REGION)"),
    (client_error("SlowDown", "Please reduce your request rate.\nmore"),
     "S3 bucket 'd': An error occurred (SlowDown) when calling the HeadBucket operation: Please reduce "
     "your request rate."),
])
def test_describe_aws_error_is_one_line_naming_the_resource(exc, expected):
    message = describe_aws_error(exc, "S3 bucket 'd'", END)
    assert message == expected
    assert "\n" not in message


def test_absent_tells_missing_from_refused():
    assert aws_check.absent("s3_bucket", client_error("404"))
    assert not aws_check.absent("s3_bucket", client_error("403"))
    missing_stack = client_error("ValidationError", "Stack with id ml-vpc does not exist", "DescribeStacks")
    assert aws_check.absent("cloudformation_stack", missing_stack)
    bad_name = client_error("ValidationError", "1 validation error detected", "DescribeStacks")
    assert not aws_check.absent("cloudformation_stack", bad_name)
    assert not aws_check.absent("cloudformation_stack", EndpointConnectionError(endpoint_url=END))
