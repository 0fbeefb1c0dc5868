"""The delay schedule and failure classification of the retry_backoff action (roles/_artifact's
downloads). The retries against a real flaky mirror are tested in tests/molecule/test_node_stack_errors.py."""

from __future__ import annotations

from ansible_collections.awsome.distributed_training.plugins.action.retry_backoff import (
    backoff_delays,
    is_permanent,
)


def test_delays_grow_by_the_factor_and_stop_at_the_cap():
    assert backoff_delays(5, 5, 2, 60) == [5, 10, 20, 40, 60]
    assert backoff_delays(0, 5, 2, 60) == []


def test_named_failures_are_permanent_others_transient():
    assert is_permanent({"status_code": 404, "msg": "Not Found"}, [404], [])
    assert is_permanent({"msg": "The checksum for x did not match"}, [], ["checksum"])
    assert not is_permanent({"status_code": 503, "msg": "Service Unavailable"}, [404], ["checksum"])
    assert not is_permanent({"msg": "timed out"}, [404], ["checksum"])
