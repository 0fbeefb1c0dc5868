"""Shared pieces of the project's own test cases (fsdp, ddp, nccl)."""
