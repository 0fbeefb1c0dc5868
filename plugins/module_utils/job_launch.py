"""How a node starts its part of a run: the rank command and the container around it.

Pure Python (no Ansible imports): the launcher's templates call these through the filters in
plugins/filter/launch.py, and tests/unit/test_job_launch.py checks every rendered line.

Contract of a launch (docs/containers.md): launch.sh exports MASTER_ADDR, MASTER_PORT, NNODES,
NODE_RANK, NPROC_PER_NODE, WORLD_SIZE, AWSOME_OUTPUT_DIR and AWSOME_CHECKPOINT_DIR, then runs the
argv built here from the node's run directory. Arguments may refer to those variables as ${NAME}:
they are expanded by the node's shell (inside the container they hold the same values).
"""

from __future__ import annotations

import re
import shlex

# ${NAME} references stay expandable; everything else is quoted literally.
_REF = re.compile(r"(\$\{[A-Z_][A-Z0-9_]*\})")
RUNTIMES = ("podman", "enroot")
PROFILERS = ("nsys",)


def shell_words(argv: list) -> str:
    """argv as one shell line: literals quoted, ${NAME} references left for the shell to expand."""
    words = []
    for arg in argv:
        parts = _REF.split(str(arg))
        word = "".join(f'"{p}"' if _REF.fullmatch(p) else shlex.quote(p) for p in parts if p)
        words.append(word or "''")
    return " ".join(words)


def profiler_argv(profiler: dict | None) -> list[str]:
    """The wrapper a profiled run puts in front of a node's rank command; [] when not profiled.

    nsys: one Nsight Systems report per node process tree (torchrun and every rank it starts), written
    into the node's output directory as nsys-<host>-<pid>.nsys-rep, where the launcher collects results.
    `profiler` is {tool, command, args}: the tool, its command (name or path) and the options
    (launcher_nsys_args, pinned in the launcher's defaults).
    """
    if not profiler or profiler.get("tool", "none") in ("none", "", None):
        return []
    if profiler["tool"] != "nsys":
        raise ValueError(f"unknown profiler {profiler['tool']!r} (known: {', '.join(PROFILERS)})")
    return [profiler.get("command") or "nsys", "profile", *profiler.get("args", []),
            "--output", "${AWSOME_OUTPUT_DIR}/nsys-%h-%p", "--force-overwrite", "true"]


def rank_argv(plan: dict, python: str, profiler: dict | None = None) -> list[str]:
    """What runs on a node: torchrun over the entrypoint, or the case's own command (once per node),
    under the profiler when one is asked for (profiler_argv).

    `python` is the case's interpreter on this node (a per-case venv, the launcher's python, or the
    image's python3); it replaces a leading `python` of a command-mode argv. The run's directories
    follow as --output-dir/--checkpoint-dir unless the manifest says its command takes neither
    (`launch.output_dir_arg: false`: a framework's own CLI, which reads them from the contract's env).
    """
    dirs = []
    if plan.get("output_dir_arg", True):
        dirs = ["--output-dir", "${AWSOME_OUTPUT_DIR}"]
        if plan.get("checkpoint_dir"):
            dirs += ["--checkpoint-dir", "${AWSOME_CHECKPOINT_DIR}"]
    wrap = profiler_argv(profiler)
    if plan["launch_mode"] == "command":
        command = list(plan["command"])
        if command[0] in ("python", "python3"):
            command[0] = python
        return [*wrap, *command, *plan["args"], *dirs]
    return [*wrap, python, "-m", "torch.distributed.run",
            "--nnodes", "${NNODES}", "--nproc-per-node", "${NPROC_PER_NODE}", "--node-rank", "${NODE_RANK}",
            "--master-addr", "${MASTER_ADDR}", "--master-port", "${MASTER_PORT}",
            f"code/{plan['entrypoint']}", *plan["args"], *dirs]


def container_name(run_id: str, host: str) -> str:
    """One name per run and node: what the stop path removes, and what `podman ps` shows."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"awsome-{run_id}-{host}")


def binds(container: dict, paths: list[str]) -> list[tuple[str, str]]:
    """The run's own directories at the same path inside, then the manifest's mounts."""
    out = [(p, p) for p in dict.fromkeys(paths) if p]
    out += [(m["src"], m["dst"]) for m in container.get("mounts", [])]
    return out


def container_argv(runtime: str, container: dict, *, name: str, run_id: str, workdir: str,
                   paths: list[str]) -> tuple[list[str], list[str]]:
    """The container start for one node, split where launch.sh inserts the job's `--env` flags.

    podman: the container joins the node's own namespaces (network, hostname, IPC): on a real node
    the host's, on a simulated node the node's, since the launch runs inside it. --rm and a fixed
    name let the stop path remove it whatever happened.
    enroot: starts the container launch.sh created from the squashfs image (`enroot create`); enroot
    has no working-directory flag, so a shell changes into it and execs the rank command.
    """
    workdir = container.get("workdir") or workdir
    env = [f"{key}={value}" for key, value in sorted(container.get("env", {}).items())]
    if runtime == "podman":
        argv = ["podman", "run", "--rm", "--name", name, "--label", f"org.awsome.run={run_id}",
                "--network", "host", "--uts", "host", "--ipc", "host", "--pull", "never",
                "--workdir", workdir]
        for src, dst in binds(container, paths):
            argv += ["--volume", f"{src}:{dst}"]
        for item in env:
            argv += ["--env", item]
        return argv, [container["image"]]
    if runtime == "enroot":
        argv = ["enroot", "start", "--rw"]
        for src, dst in binds(container, paths):
            argv += ["--mount", f"{src}:{dst}"]
        for item in env:
            argv += ["--env", item]
        return argv, [name, "sh", "-c", 'cd "$0" && exec "$@"', workdir]
    raise ValueError(f"unknown container runtime {runtime!r} (known: {', '.join(RUNTIMES)})")


def pyxis_args(container: dict, *, paths: list[str]) -> list[str]:
    """srun flags that put every task of the job step in the image (Pyxis + Enroot under Slurm)."""
    mounts = ",".join(f"{src}:{dst}" for src, dst in binds(container, paths))
    args = [f"--container-image={container['image']}", "--no-container-mount-home"]
    if mounts:
        args.append(f"--container-mounts={mounts}")
    if container.get("workdir"):
        args.append(f"--container-workdir={container['workdir']}")
    return args


_NCCL_VERSION = re.compile(r"NCCL version (\d+\.\d+\.\d+)")
_NCCL_NETWORK = re.compile(r"Using network (\S+(?: \S+)?)")
_NCCL_PLUGIN = re.compile(r"NET/Plugin: Loaded net plugin (\S+)|Loaded net plugin (\S+)")


def parse_nccl_log(text: str) -> dict:
    """The NCCL version and the network a job loaded, from NCCL's INFO lines (NCCL_DEBUG=INFO,
    NCCL_DEBUG_SUBSYS=INIT,NET). `network` is NCCL's own word: Socket, IB, or the plugin's name
    (AWS Libfabric / Libfabric for aws-ofi-nccl over EFA)."""
    version = _NCCL_VERSION.search(text)
    networks = sorted(set(m.group(1).strip() for m in _NCCL_NETWORK.finditer(text)))
    plugin = _NCCL_PLUGIN.search(text)
    return {"version": version.group(1) if version else None,
            "network": ", ".join(networks) if networks else None,
            "plugin": (plugin.group(1) or plugin.group(2)) if plugin else None}


def uses_ofi(nccl: dict) -> bool:
    """Whether NCCL ran over aws-ofi-nccl (libfabric/EFA) rather than its socket or IB transport."""
    text = f"{nccl.get('network') or ''} {nccl.get('plugin') or ''}".lower()
    return "libfabric" in text or "ofi" in text
