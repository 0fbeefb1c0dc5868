"""The launcher's stop script (roles/launcher/files/stop_job.sh) signals a job only while its PID file
still names the process the launch started: the same PID with another start time (a reboot, PID
reuse) is someone else's process and is left alone."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

STOP = Path(__file__).resolve().parents[2] / "roles" / "launcher" / "files" / "stop_job.sh"


def start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[19]


def running(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def stop(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(STOP), str(run_dir), "stopped by the test", "143"],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def job():
    """A launch.sh stand-in with a child below it (the script walks the tree); an odd duration, so
    that the clean-up and the check below find only this test's sleep."""
    proc = subprocess.Popen(["bash", "-c", "sleep 317.25 & wait"])
    time.sleep(0.2)
    yield proc
    if running(proc):
        proc.kill()
    subprocess.run(["pkill", "-f", "^sleep 317.25$"], check=False)


def test_a_pid_file_naming_another_process_signals_nothing(tmp_path, job):
    (tmp_path / "pid").write_text(f"{job.pid} {int(start_time(job.pid)) + 1}\n")  # same number, other start
    out = stop(tmp_path)
    assert running(job), "a process that is not the run's own was signalled"
    assert f"pid {job.pid} is no longer this run's launch.sh: not signalled" in out.stderr
    # The run is still recorded as stopped, with why.
    assert (tmp_path / "rc").read_text() == "143\n"
    assert (tmp_path / "reason").read_text() == "stopped by the test\n"


def test_the_runs_own_process_tree_is_stopped(tmp_path, job):
    (tmp_path / "pid").write_text(f"{job.pid} {start_time(job.pid)}\n")
    out = stop(tmp_path)
    job.wait(timeout=30)
    assert out.stdout.strip() == "stopped" and (tmp_path / "rc").read_text() == "143\n"
    assert subprocess.run(["pgrep", "-f", "^sleep 317.25$"], capture_output=True, check=False).returncode == 1


def test_a_job_that_already_ended_is_left_as_it_ended(tmp_path, job):
    (tmp_path / "pid").write_text(f"{job.pid} {start_time(job.pid)}\n")
    (tmp_path / "rc").write_text("0\n")
    stop(tmp_path)
    assert running(job) and (tmp_path / "rc").read_text() == "0\n" and not (tmp_path / "reason").exists()
