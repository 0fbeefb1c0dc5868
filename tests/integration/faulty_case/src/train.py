"""Misbehaves on demand (see testcase.yml); otherwise a correct, tiny distributed job."""

import argparse
import os
import time

import torch
import torch.distributed as dist

from dtcase.metrics import MetricsWriter

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int)
p.add_argument("--fail-rank", type=int)
p.add_argument("--hang", action=argparse.BooleanOptionalAction)
p.add_argument("--flat-loss", action=argparse.BooleanOptionalAction)
p.add_argument("--output-dir")
a = p.parse_args()
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
metrics = MetricsWriter(a.output_dir, rank, world)
metrics.write("start", device="cpu")
torch.manual_seed(0)
x = torch.randn(32, 4)
y = x.sum(dim=1, keepdim=True)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.0 if a.flat_loss else 0.1)
for step in range(1, a.steps + 1):
    if rank == a.fail_rank and step == 3:
        raise RuntimeError(f"injected failure on rank {rank}")
    if a.hang and step == 3:
        time.sleep(3600)
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    metrics.write("step", step=step, loss=total.item() / world, step_time_s=0.01)
metrics.write("end", status="ok")
dist.destroy_process_group()
os._exit(0)
