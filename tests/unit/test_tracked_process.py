"""tracked_process: what counts as "our process running", and how it is stopped and started."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from ansible_collections.awsome.distributed_training.plugins.modules import tracked_process as tp


@pytest.fixture
def sleeper():
    child = subprocess.Popen(["sleep", "30"])
    yield child
    child.kill()
    child.wait()


def test_a_live_process_is_ours_only_when_its_identity_matches(sleeper):
    assert tp.is_ours(sleeper.pid)
    assert tp.is_ours(sleeper.pid, match="sleep 30", netns="/proc/self/ns/net")
    assert not tp.is_ours(sleeper.pid, match="sshd")
    # Another namespace file (a different inode): the process does not live there.
    assert not tp.is_ours(sleeper.pid, netns="/proc/self/ns/uts")
    assert not tp.is_ours(0)


def test_a_zombie_is_not_running():
    child = subprocess.Popen(["true"])
    stat = Path(f"/proc/{child.pid}/stat")
    # Not reaped on purpose: PID 1 of the test machine does not reap orphans either.
    assert tp.wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z", 10)
    assert not tp.is_ours(child.pid)
    child.wait()


def test_read_pid_tolerates_missing_and_garbage_files(tmp_path):
    assert tp.read_pid(str(tmp_path / "none.pid")) == 0
    (tmp_path / "bad.pid").write_text("not a pid\n")
    assert tp.read_pid(str(tmp_path / "bad.pid")) == 0
    (tmp_path / "ok.pid").write_text("1234\n")
    assert tp.read_pid(str(tmp_path / "ok.pid")) == 1234


def test_stop_never_signals_a_process_that_is_not_ours(sleeper):
    tp.stop(sleeper.pid, match="sshd", netns=None, timeout=0.2)
    assert sleeper.poll() is None


def test_stop_escalates_to_sigkill():
    child = subprocess.Popen(["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    time.sleep(0.2)  # let the shell install its trap
    started = time.monotonic()
    tp.stop(child.pid, match="trap", netns=None, timeout=0.5)
    assert child.wait(timeout=5) == -9
    assert time.monotonic() - started < 5


def test_start_detached_records_a_process_in_its_own_session(tmp_path):
    pidfile, log = tmp_path / "p.pid", tmp_path / "logs" / "p.log"
    pid = tp.start_detached(["sh", "-c", "echo hello; exec sleep 30"], str(pidfile), str(log))
    try:
        assert tp.read_pid(str(pidfile)) == pid
        assert os.getsid(pid) == pid
        assert tp.wait_until(lambda: log.exists() and log.read_text() == "hello\n", 10)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
