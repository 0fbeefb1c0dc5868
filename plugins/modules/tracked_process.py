#!/usr/bin/python
"""Keep one long-running process alive (or stopped), tracked by a PID file - never by name."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tracked_process
short_description: Start or stop a long-running process tracked by its PID file
description:
  - For hosts without a service manager, such as the simulated cluster (PID 1 is not systemd and does
    not reap orphans). A process counts as running only when the PID in I(pidfile) is alive, not a
    zombie, and - when given - its command line contains I(match) and it lives in the network
    namespace I(netns). So a recycled PID is never mistaken for ours, and nothing is killed by name.
  - I(state=present) starts the process when it is not running (or when I(restart) is true);
    I(state=absent) stops it (SIGTERM, then SIGKILL after I(timeout)) and removes the PID file.
options:
  pidfile: {description: PID file that identifies the process (its directory is created)., type: path, required: true}
  state: {description: Wanted state., type: str, choices: [present, absent], default: present}
  command: {description: Program and arguments (required for I(state=present))., type: list, elements: str}
  daemon:
    description:
      - C(false) the module starts I(command) detached (own session, no terminal, output to I(log))
        and writes its PID to I(pidfile).
      - C(true) I(command) daemonizes itself and writes I(pidfile) (sshd, slurmd, munged), and the module waits for it.
    type: bool
    default: false
  match: {description: Substring the process's command line must contain., type: str}
  netns: {description: Path of a network namespace (e.g. /run/netns/node1) the process must live in., type: path}
  restart: {description: Restart even when running (e.g. its configuration changed)., type: bool, default: false}
  log:
    description: File that receives the output of a detached (I(daemon=false)) process (its directory is created).
    type: path
  timeout: {description: Seconds to wait for a start or a stop., type: float, default: 10}
author: awsome.distributed_training developers (@awsome)
"""

EXAMPLES = r"""
- name: Keep a holder process in the node's namespace
  awsome.distributed_training.tracked_process:
    pidfile: /srv/cluster/run/node1.holder.pid
    command: [nsenter, --net=/run/netns/node1, sleep, infinity]
    match: sleep
    netns: /run/netns/node1

- name: Stop it
  awsome.distributed_training.tracked_process:
    pidfile: /srv/cluster/run/node1.holder.pid
    state: absent
    match: sleep
"""

RETURN = r"""
pid:
  description: PID of the running process (0 when stopped).
  returned: always
  type: int
"""

import contextlib
import os
import signal
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.awsome.distributed_training.plugins.module_utils.detached import start_detached


def read_pid(pidfile: str) -> int:
    """The PID recorded in pidfile, 0 when missing or unreadable."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def is_ours(pid: int, match: str | None = None, netns: str | None = None) -> bool:
    """True when pid is a live (non-zombie) process that matches the given identity."""
    if pid <= 0:
        return False
    proc = f"/proc/{pid}"
    try:
        with open(f"{proc}/stat", encoding="utf-8", errors="replace") as handle:
            # "pid (comm) S ...": the state follows the last ')' (comm may contain spaces or parens).
            if handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
        if match is not None:
            with open(f"{proc}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
            if match not in cmdline:
                return False
        if netns is not None:
            have, want = os.stat(f"{proc}/ns/net"), os.stat(netns)
            if (have.st_dev, have.st_ino) != (want.st_dev, want.st_ino):
                return False
    except (OSError, IndexError):
        return False
    return True


def remove(path: str) -> None:
    # Daemons such as sshd delete their own PID file when they stop.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(pid: int, match: str | None, netns: str | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL: only ever sent to a PID that was just checked to be ours."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not is_ours(pid, match, netns):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: not is_ours(pid, match, netns), timeout):
            return
    raise RuntimeError(f"process {pid} survived SIGKILL")


def start_daemon(command: list[str]) -> None:
    # The daemon's child may keep inherited descriptors open: never pipe them, or this call hangs.
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True, timeout=60, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().replace("\n", " | ")
        raise RuntimeError(f"{command[0]} exited {result.returncode}: {detail}")


def ensure_present(module: AnsibleModule, pid: int, running: bool) -> dict:
    p = module.params
    if running and not p["restart"]:
        return {"changed": False, "pid": pid}
    if module.check_mode:
        return {"changed": True, "pid": pid}
    if running:
        stop(pid, p["match"], p["netns"], p["timeout"])
    remove(p["pidfile"])
    os.makedirs(os.path.dirname(p["pidfile"]), exist_ok=True)
    if p["daemon"]:
        start_daemon(p["command"])
    else:
        start_detached(p["command"], p["pidfile"], p["log"])
    if not wait_until(lambda: is_ours(read_pid(p["pidfile"]), p["match"], p["netns"]), p["timeout"]):
        raise RuntimeError(f"{p['command'][0]} is not running {p['timeout']:g} s after start "
                           f"(pidfile {p['pidfile']}, pid {read_pid(p['pidfile']) or 'none'})")
    return {"changed": True, "pid": read_pid(p["pidfile"])}


def ensure_absent(module: AnsibleModule, pid: int, running: bool) -> dict:
    p = module.params
    exists = os.path.exists(p["pidfile"])
    if not (running or exists):
        return {"changed": False, "pid": 0}
    if not module.check_mode:
        if running:
            stop(pid, p["match"], p["netns"], p["timeout"])
        remove(p["pidfile"])
    return {"changed": True, "pid": 0}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "pidfile": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "command": {"type": "list", "elements": "str"},
            "daemon": {"type": "bool", "default": False},
            "match": {"type": "str"},
            "netns": {"type": "path"},
            "restart": {"type": "bool", "default": False},
            "log": {"type": "path"},
            "timeout": {"type": "float", "default": 10.0},
        },
        required_if=[("state", "present", ["command"])],
        supports_check_mode=True,
    )
    p = module.params
    pid = read_pid(p["pidfile"])
    # A namespace that is gone (absent after a crash) cannot hold our process: only the PID identity counts.
    netns = p["netns"] if p["netns"] and os.path.exists(p["netns"]) else None
    p["netns"] = netns
    running = is_ours(pid, p["match"], netns)
    try:
        result = (ensure_present if p["state"] == "present" else ensure_absent)(module, pid, running)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        module.fail_json(msg=f"{p['pidfile']}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
