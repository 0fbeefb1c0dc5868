"""A picotron-style 4D-parallel trainer (data x pipeline x context x tensor) on torch.distributed.

Small and explicit on purpose, like picotron: every collective is written out where it happens.
layout: the 4D mesh and its checks; tp: column/row-parallel linears; cp: K/V all-gather for
context parallelism; model: a tiny Llama built from full weights sliced for this rank; pipeline: the
all-forward-all-backward (AFAB) schedule with send/recv between stages; data: the global batch split
over dp and cp.
"""
