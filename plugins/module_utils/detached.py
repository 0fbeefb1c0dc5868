"""Start a process that outlives the module that starts it (used by the tracked_process module).

A module's run_command waits for its command; a long-running process (a holder, sshd, a job)
must instead be left running on its own: own session, no terminal, output to a log.
"""

from __future__ import annotations

import os
import subprocess


def start_detached(command: list[str], pidfile: str, log: str | None) -> int:
    """Start command in its own session with its output in log; write and return its PID."""
    if log:
        os.makedirs(os.path.dirname(log), exist_ok=True)
    out = open(log or os.devnull, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        # Own session: the process outlives this module and ansible, and gets no terminal signals.
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
    finally:
        out.close()
    with open(pidfile, "w", encoding="ascii") as handle:
        handle.write(f"{child.pid}\n")
    return child.pid
