# Copyright: awsome.distributed_training contributors
# MIT-0 (see galaxy.yml)
"""One-line, resource-naming messages for the AWS errors users actually hit.

Shared by the S3 staging module, the HyperPod inventory plugin and the cluster module so that a
missing bucket, an unreachable endpoint or rejected credentials read the same everywhere and never
surface as a traceback.
"""

from __future__ import annotations

try:
    import botocore.exceptions as _bce
except ImportError:  # reported by the caller's own boto3 check
    _bce = None

_MISSING = {
    "NoSuchBucket": "does not exist",
    "NoSuchKey": "does not exist",
    "ResourceNotFound": "does not exist",
    "ValidationException": "was rejected",
    "404": "does not exist",
    "NotFound": "does not exist",
}
_AUTH = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "UnrecognizedClientException",
    "InvalidSignatureException", "ExpiredToken", "ExpiredTokenException", "AuthFailure", "AccessDenied",
    "AccessDeniedException", "403",
}


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def describe_aws_error(exc: BaseException, resource: str, endpoint: str | None = None) -> str:
    """Return one line naming `resource` (e.g. "S3 bucket 'data'") and what went wrong with it."""
    where = f" at {endpoint}" if endpoint else ""
    if _bce is not None:
        if isinstance(exc, (_bce.NoCredentialsError, _bce.PartialCredentialsError)):
            return (f"{resource}: no AWS credentials found "
                    "(set a profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an instance role)")
        if isinstance(exc, (_bce.EndpointConnectionError, _bce.ConnectTimeoutError, _bce.ReadTimeoutError)):
            return f"{resource}: AWS endpoint unreachable{where} ({type(exc).__name__})"
        if isinstance(exc, _bce.NoRegionError):
            return f"{resource}: no AWS region given (set region or AWS_REGION)"
    code = error_code(exc)
    if code in _AUTH:
        return f"{resource}: AWS credentials rejected or not allowed{where} ({code})"
    if code in _MISSING:
        detail = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        suffix = f": {detail}" if detail and _MISSING[code] == "was rejected" else ""
        return f"{resource} {_MISSING[code]}{where}{suffix}"
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{resource}: {message}"
