"""Helpers shared by every test directory: `from helpers import REPO, run, run_playbook`."""

from __future__ import annotations

import base64
import importlib.util
import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


def load_module(path: Path, name: str | None = None):
    """A script or plugin file as a module (scripts/ and module_utils/ are not packages here)."""
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ansible_env(**extra: str) -> dict[str, str]:
    """The environment `make` gives ansible-playbook, molecule and the linters."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["CONTAINERS_CONF"] = str(REPO / "molecule" / "containers.conf")
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env.update(extra)
    return env


def run(cmd: list[str], *, timeout: float = 900, check: bool = False, env: dict | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run a command from the repository root and return its completed process (text output)."""
    proc = subprocess.run(cmd, cwd=cwd, env=env or ansible_env(), text=True, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-6000:]}")
    return proc


def run_playbook(playbook: str, *args: str, inventory: str | Path | None = None, check: bool = False,
                 timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [str(VENV_BIN / "ansible-playbook"), playbook, *args]
    if inventory is not None:
        cmd[2:2] = ["-i", str(inventory)]
    return run(cmd, timeout=timeout, check=check, env=env)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a local rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gloo_rank_envs(world: int, *pythonpath: Path) -> list[dict[str, str]]:
    """The environment torchrun gives each of ``world`` ranks (no agent: faster to start), for a
    gloo job on 127.0.0.1 with one thread per rank and ``pythonpath`` importable."""
    port = str(free_port())
    return [{"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank), "LOCAL_RANK": str(rank),
             "WORLD_SIZE": str(world), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1",
             "PYTHONPATH": ":".join(str(p) for p in pythonpath)} for rank in range(world)]


def run_local_processes(cmd: list[str], envs: list[dict[str, str]],
                        timeout: float = 300) -> tuple[list[int], list[str]]:
    """Start one process of `cmd` per environment at once (the ranks or nodes of a job, on this
    machine), wait for all, and return their exit codes and outputs. One that hangs after another
    failed is killed when the wait ends."""
    procs = [subprocess.Popen(cmd, env={**os.environ, **env}, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for env in envs]
    try:
        logs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()  # no-op once exited
    return [p.returncode for p in procs], logs


def leaked(secrets: dict[str, str], *texts: str) -> list[str]:
    """Names of the secrets whose value appears in any of the texts (play output, logs, results)."""
    return [name for name, value in secrets.items() if any(value in text for text in texts)]


def munge_key_forms(key: bytes) -> dict[str, str]:
    """How a munge key would show if it leaked: base64 (slurp, copy content) or hex, whole or a part."""
    return {"munge key (base64)": base64.b64encode(key[:48]).decode(), "munge key (hex)": key[:32].hex()}
