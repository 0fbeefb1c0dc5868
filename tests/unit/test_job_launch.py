"""What a node runs: the rank command in both launch modes, the container around it, and what NCCL
said it loaded. Each rendered line is run through bash here, so quoting is checked, not assumed."""

import subprocess

import pytest

from ansible_collections.awsome.distributed_training.plugins.module_utils import job_launch as jl
from ansible_collections.awsome.distributed_training.plugins.module_utils.testcase import (
    ManifestError,
    resolve,
)

MANIFEST = {
    "name": "demo",
    "framework": "pytorch",
    "entrypoint": "demo/src/train.py",
    "launch": {"checkpoint_dir": True,
               "command": ["python", "-m", "demo.run", "--nodes=${NNODES}", "--name", "it's ${NODE_RANK}"]},
    "container": {"image": {"cpu": "localhost/awsome-training:cpu"}, "mounts": ["/data", "/src:/dst"],
                  "env": {"HF_HOME": "/data/hf"}},
    "parameters": {"steps": {"type": "int", "default": 3},
                   "fast": {"type": "bool", "default": True},
                   "iters": {"type": "int", "default": 5, "flag": "--training.steps"}},
    "presets": {"cpu": {"resources": {"nodes": 2, "procs_per_node": 2, "accelerator": "cpu"}}},
    "metrics": {},
    "success": {"checks": []},
}


def plan(**kw):
    return resolve(MANIFEST, preset="cpu", hosts=["node1", "node2"], target="cluster", **kw)


def expand(line: str, **env: str) -> list[str]:
    """The argv bash builds from a rendered line, with the launch contract's variables set."""
    script = f'for a in {line}; do printf "%s\\n" "$a"; done'
    out = subprocess.run(["bash", "-c", script], env=env, text=True, capture_output=True, check=True)
    return out.stdout.splitlines()


def test_torchrun_mode_runs_the_entrypoint_with_the_contract_variables():
    p = plan()
    argv = expand(jl.shell_words(jl.rank_argv(p, "/opt/py/bin/python")), NNODES="2", NPROC_PER_NODE="2",
                  NODE_RANK="1", MASTER_ADDR="10.0.0.1", MASTER_PORT="29500",
                  AWSOME_OUTPUT_DIR="/run/out", AWSOME_CHECKPOINT_DIR="/shared/ckpt")
    assert argv == ["/opt/py/bin/python", "-m", "torch.distributed.run", "--nnodes", "2",
                    "--nproc-per-node", "2", "--node-rank", "1", "--master-addr", "10.0.0.1",
                    "--master-port", "29500",
                    "code/demo/src/train.py", "--fast", "--training.steps", "5", "--steps", "3",
                    "--output-dir", "/run/out", "--checkpoint-dir", "/shared/ckpt"]


def test_command_mode_runs_the_cases_own_argv_with_its_python_and_flags():
    p = plan(launch_mode="command", params={"fast": False})
    assert p["launch_mode"] == "command"
    argv = expand(jl.shell_words(jl.rank_argv(p, "/envs/demo/bin/python")), NNODES="2", NODE_RANK="0",
                  AWSOME_OUTPUT_DIR="/o", AWSOME_CHECKPOINT_DIR="/c")
    # ${...} inside a literal expands, the quote in it stays literal; a foreign flag keeps its spelling.
    assert argv == ["/envs/demo/bin/python", "-m", "demo.run", "--nodes=2", "--name", "it's 0",
                    "--no-fast", "--training.steps", "5", "--steps", "3", "--output-dir", "/o",
                    "--checkpoint-dir", "/c"]


def test_a_framework_cli_that_takes_no_directory_flags_gets_none():
    """`launch.output_dir_arg: false` (NeMo, BioNeMo, Neuronx): their parsers refuse --output-dir;
    they read the run's directories from the contract's environment instead."""
    manifest = {**MANIFEST, "launch": {**MANIFEST["launch"], "output_dir_arg": False}}
    p = resolve(manifest, preset="cpu", hosts=["node1", "node2"], target="cluster", launch_mode="command")
    argv = jl.rank_argv(p, "/py")
    assert argv[-2:] == ["--steps", "3"] and "--output-dir" not in argv and "--checkpoint-dir" not in argv


def test_podman_wraps_the_rank_command_in_the_nodes_namespaces_with_the_runs_directories():
    p = plan(container_image="default")
    before, after = jl.container_argv("podman", p["container"], name="awsome-r-node1", run_id="r",
                                      workdir="/work/r/node1", paths=["/work/r/node1", "/shared/r/ckpt"])
    assert before[:2] == ["podman", "run"] and after == ["localhost/awsome-training:cpu"]
    line = " ".join(before)
    for flag in ("--rm", "--name awsome-r-node1", "--network host", "--uts host", "--ipc host",
                 "--pull never",
                 "--workdir /work/r/node1", "--volume /work/r/node1:/work/r/node1",
                 "--volume /shared/r/ckpt:/shared/r/ckpt", "--volume /data:/data", "--volume /src:/dst",
                 "--env HF_HOME=/data/hf", "--label org.awsome.run=r"):
        assert flag in line, flag


def test_enroot_starts_the_created_container_in_the_run_directory(tmp_path):
    p = plan(container_image="/shared/images/awsome-training+cpu.sqsh")
    before, after = jl.container_argv("enroot", p["container"], name="awsome-r-node2", run_id="r",
                                      workdir=str(tmp_path), paths=[str(tmp_path)])
    assert before[:3] == ["enroot", "start", "--rw"] and f"{tmp_path}:{tmp_path}" in before
    assert after[0] == "awsome-r-node2"
    # What follows the container name runs the rank command in the run directory.
    out = subprocess.run([*after[1:], "pwd"], text=True, capture_output=True, check=True, cwd="/")
    assert out.stdout.strip() == str(tmp_path)


def test_pyxis_flags_put_the_job_step_in_the_image():
    p = plan(container_image="/shared/images/awsome-training+cpu.sqsh")
    args = jl.pyxis_args(p["container"], paths=["/work/r", "/shared/r/ckpt"])
    assert args == ["--container-image=/shared/images/awsome-training+cpu.sqsh", "--no-container-mount-home",
                    "--container-mounts=/work/r:/work/r,/shared/r/ckpt:/shared/r/ckpt,/data:/data,/src:/dst"]


@pytest.mark.parametrize(("kw", "message"), [
    ({"launch_mode": "mpirun"}, "launch_mode must be one of torchrun, command, got 'mpirun'"),
    ({"container_image": "bad image!"},
     "container image 'bad image!' is not an image name or an absolute path"),
])
def test_bad_launch_requests_are_one_line(kw, message):
    with pytest.raises(ManifestError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        plan(**kw)


def test_a_case_without_a_command_refuses_command_mode_and_a_required_image_refuses_none():
    bare = {**MANIFEST, "launch": {}}
    with pytest.raises(ManifestError, match="demo has no launch.command"):
        resolve(bare, preset="cpu", hosts=["n1", "n2"], target="c", launch_mode="command")
    required = {**MANIFEST, "container": {**MANIFEST["container"], "required": True}}
    with pytest.raises(ManifestError, match="runs only in a container"):
        resolve(required, preset="cpu", hosts=["n1", "n2"], target="c", container_image="none")
    # Required: the manifest's image without asking; optional: bare unless asked.
    default = resolve(required, preset="cpu", hosts=["n1", "n2"], target="c")
    assert default["container"]["image"].endswith(":cpu")
    assert plan()["container"] is None


def test_container_names_are_one_per_run_and_node():
    assert jl.container_name("fsdp-cpu-tiny-2026 x", "node1") == "awsome-fsdp-cpu-tiny-2026-x-node1"


# Lines as NCCL 2.2x prints them with NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,NET.
SOCKET_LOG = """\
gpu0:1234:1234 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.5<0>
gpu0:1234:1234 [0] NCCL INFO NET/Plugin: Could not find: libnccl-net.so. Using internal network plugin.
gpu0:1234:1234 [0] NCCL INFO cudaDriverVersion 12080
NCCL version 2.26.5+cuda12.8
gpu0:1234:1290 [0] NCCL INFO NET/Socket : Using [0]eth0:10.0.0.5<0>
gpu0:1234:1290 [0] NCCL INFO Using network Socket
"""
OFI_LOG = """\
p5-1:88:88 [0] NCCL INFO NET/Plugin: Loaded net plugin Libfabric (v9)
p5-1:88:88 [0] NCCL INFO NET/OFI Initializing aws-ofi-nccl 1.14.2
p5-1:88:88 [0] NCCL INFO NCCL version 2.26.5+cuda12.8
p5-1:88:140 [0] NCCL INFO Using network Libfabric
"""


def test_nccl_lines_say_version_and_network():
    sock = jl.parse_nccl_log(SOCKET_LOG)
    assert sock == {"version": "2.26.5", "network": "Socket", "plugin": None} and not jl.uses_ofi(sock)
    ofi = jl.parse_nccl_log(OFI_LOG)
    assert ofi["version"] == "2.26.5" and ofi["network"] == "Libfabric" and jl.uses_ofi(ofi)
    assert jl.parse_nccl_log("") == {"version": None, "network": None, "plugin": None}


def test_nsys_wraps_the_rank_command_of_both_modes_and_writes_into_the_output_dir():
    """-e profiler=nsys: `nsys profile` with the pinned options in front of torchrun (one report per node
    for torchrun and all its ranks) or of the case's own command; the report lands in out/."""
    nsys = {"tool": "nsys", "command": "/opt/nvidia/nsys/bin/nsys",
            "args": ["--trace=cuda,nvtx,osrt", "--sample=none"]}
    env = {"NNODES": "2", "NPROC_PER_NODE": "2", "NODE_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "1",
           "AWSOME_OUTPUT_DIR": "/run/out dir", "AWSOME_CHECKPOINT_DIR": "/c"}
    wrap = ["/opt/nvidia/nsys/bin/nsys", "profile", "--trace=cuda,nvtx,osrt", "--sample=none",
            "--output", "/run/out dir/nsys-%h-%p", "--force-overwrite", "true"]
    p = plan()
    torchrun = expand(jl.shell_words(jl.rank_argv(p, "/py", nsys)), **env)
    assert torchrun == [*wrap, *expand(jl.shell_words(jl.rank_argv(p, "/py")), **env)]
    assert torchrun[len(wrap):len(wrap) + 3] == ["/py", "-m", "torch.distributed.run"]
    cmd = plan(launch_mode="command")
    assert expand(jl.shell_words(jl.rank_argv(cmd, "/py", nsys)), **env)[:len(wrap) + 3] == [
        *wrap, "/py", "-m", "demo.run"]
    # Not profiled: nothing in front, whichever way "none" is said.
    for off in (None, {}, {"tool": "none"}):
        assert jl.rank_argv(p, "/py", off) == jl.rank_argv(p, "/py")
    with pytest.raises(ValueError, match="unknown profiler 'perf' \\(known: nsys\\)"):
        jl.rank_argv(p, "/py", {"tool": "perf"})
