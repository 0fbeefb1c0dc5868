"""Collective bus-bandwidth sweep (the `nccl` test case): nccl-tests' method on torch.distributed."""
