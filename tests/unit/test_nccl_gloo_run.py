"""The collectives test case run for real with gloo on CPU, on 127.0.0.1 only.

NCCL on GPUs cannot run on this machine; the GPU path was measured on 4x H100
(docs/test_cases/collectives.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "test_cases" / "collectives" / "src"
sys.path.insert(0, str(SRC))

import collectives  # noqa: E402
from collbench import bandwidth, ops  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _loopback_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=f"{REPO / 'test_cases' / 'common'}:{SRC}")
    env.update(extra)
    return env


def test_two_gloo_ranks_sweep_every_op_with_correct_results(tmp_path):
    """Two processes with the environment torchrun would give them (no agent: faster to start)."""
    out = tmp_path / "out"
    cmd = [sys.executable, str(SRC / "collectives.py"), "--min-bytes", "1024", "--max-bytes", "4096",
           "--iters", "2", "--warmup-iters", "1", "--output-dir", str(out)]
    port = str(_free_port())
    procs = [subprocess.Popen(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=_loopback_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=str(r),
                                                LOCAL_RANK=str(r), WORLD_SIZE="2"))
             for r in range(2)]
    try:
        logs = [p.communicate(timeout=180)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()  # no-op once exited; stops a hung rank if the other failed
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)[-4000:]

    rank0, rank1 = _records(out / "metrics-rank0.jsonl"), _records(out / "metrics-rank1.jsonl")
    for recs in (rank0, rank1):
        assert recs[0]["event"] == "start" and recs[0]["backend"] == "gloo" and recs[0]["dtype"] == "fp32"
        assert recs[-1]["event"] == "end" and recs[-1]["status"] == "ok" and recs[-1]["steps"] == 15
    assert not [r for r in rank1 if r["event"] == "collective"]  # rank 0 alone writes results

    rows = [r for r in rank0 if r["event"] == "collective"]
    sizes = (1024, 2048, 4096)
    assert [(r["op"], r["bytes"]) for r in rows] == [(op, b) for op in bandwidth.OPS for b in sizes]
    for r in rows:
        assert r["correct"] is True and r["supported"] is True, r
        assert r["dtype"] == "fp32" and r["iters"] == 2 and r["count"] == r["bytes"] // 4
        assert r["time_us"] > 0
        assert r["algbw_gbps"] == pytest.approx(r["bytes"] / r["time_us"] / 1e3, rel=1e-3)
        factor = bandwidth.bus_factor(r["op"], 2)
        assert r["busbw_gbps"] == pytest.approx(r["algbw_gbps"] * factor, rel=1e-3, abs=1e-3)
    # the nccl-tests style table on stdout
    assert "(elements)" in logs[0] and "# alltoall: avg bus bandwidth" in logs[0]
    assert "(elements)" not in logs[1]


def test_a_wrong_result_is_recorded_and_the_run_exits_non_zero(tmp_path, monkeypatch):
    """One gloo rank in this process; all_reduce is replaced by one that corrupts its output."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")

    real = ops.select_impl("all_reduce", lambda launch: None)

    def corrupting(out, inp, n, async_op):
        work = real.launch(out, inp, n, async_op)
        out[3] += 1
        return work

    monkeypatch.setattr(collectives, "select_impl", lambda op, probe: ops.Impl(op, "corrupt", corrupting))
    rc = collectives.main(["--ops", "all_reduce", "--min-bytes", "1024", "--max-bytes", "2048",
                           "--iters", "1", "--warmup-iters", "0", "--device", "cpu",
                           "--output-dir", str(tmp_path)])
    assert rc == 1
    recs = _records(tmp_path / "metrics-rank0.jsonl")
    rows = [r for r in recs if r["event"] == "collective"]
    assert [(r["bytes"], r["correct"]) for r in rows] == [(1024, False), (2048, False)]
    assert recs[-1]["event"] == "end" and recs[-1]["status"] == "wrong_results" and recs[-1]["wrong"] == 2
